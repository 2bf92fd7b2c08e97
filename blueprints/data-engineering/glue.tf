# The Glue catalog of the lake and the role Glue jobs and crawlers run as:
# they read the raw zone and read and write the curated zone.
resource "aws_glue_catalog_database" "lake" {
  name         = local.catalog_database
  description  = "Tables of the ${local.name} data lake"
  location_uri = "s3://${aws_s3_bucket.this["curated"].bucket}/"
}

# Jobs that use this security configuration encrypt what they write (S3 objects,
# CloudWatch logs, job bookmarks) with the lake key.
resource "aws_glue_security_configuration" "jobs" {
  name = "${local.name}-jobs"

  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "SSE-KMS"
      kms_key_arn                = aws_kms_key.lake.arn
    }

    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "CSE-KMS"
      kms_key_arn                   = aws_kms_key.lake.arn
    }

    s3_encryption {
      s3_encryption_mode = "SSE-KMS"
      kms_key_arn        = aws_kms_key.lake.arn
    }
  }
}

data "aws_iam_policy_document" "glue_assume_role" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["glue.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "glue_jobs" {
  name               = "${local.name}-glue-jobs"
  description        = "Glue jobs and crawlers of ${local.name}"
  assume_role_policy = data.aws_iam_policy_document.glue_assume_role.json
}

resource "aws_iam_role_policy_attachment" "glue_service" {
  role       = aws_iam_role.glue_jobs.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AWSGlueServiceRole"
}

data "aws_iam_policy_document" "glue_jobs_lake" {
  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [aws_s3_bucket.this["raw"].arn, aws_s3_bucket.this["curated"].arn]
  }

  statement {
    sid       = "ReadRaw"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${aws_s3_bucket.this["raw"].arn}/*"]
  }

  statement {
    sid       = "ReadWriteCurated"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.this["curated"].arn}/*"]
  }

  statement {
    sid       = "UseLakeKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.lake.arn]
  }
}

resource "aws_iam_role_policy" "glue_jobs_lake" {
  name   = "lake-access"
  role   = aws_iam_role.glue_jobs.id
  policy = data.aws_iam_policy_document.glue_jobs_lake.json
}

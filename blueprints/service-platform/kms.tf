# The key policy of every KMS key in this account (EKS secrets, databases, logs): the
# account administers its keys through IAM, as with AWS's default key policy, and
# CloudWatch Logs may use them for this account's log groups only.
data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

data "aws_iam_policy_document" "key_policy" {
  #checkov:skip=CKV_AWS_109: a key policy; "*" is the key it is attached to, and the account root administers it as in AWS's default key policy
  #checkov:skip=CKV_AWS_111: a key policy; "*" is the key it is attached to, and the account root administers it as in AWS's default key policy
  #checkov:skip=CKV_AWS_356: a key policy; "*" is the key it is attached to, the only resource a key policy can name
  statement {
    sid       = "AccountAdministersKeyThroughIAM"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsEncryptsLogGroupsOfThisAccount"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:*"]
    }
  }
}

# Encrypts the account's log groups (VPC flow logs, EKS control plane).
resource "aws_kms_key" "logs" {
  description         = "Encrypts the CloudWatch log groups of ${local.name}"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key_policy.json
}

resource "aws_kms_alias" "logs" {
  name          = "alias/${local.name}-logs"
  target_key_id = aws_kms_key.logs.key_id
}

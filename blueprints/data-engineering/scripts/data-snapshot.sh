#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `snapshot` (archetype.yaml `data:`): copies the current objects of the lake's
# raw and curated buckets to
#
#     s3://<STAMP_DATA_SNAPSHOT_BUCKET>/<id>/raw/...  and  .../<id>/curated/...
#
# re-encrypted with a KMS key other accounts may use, writes <id>/manifest.json (who, when,
# and the object count per prefix of the copy, as data-stats.sh counts them, PII included)
# last, and prints the id as its last line:
#
#     <account>-<UTC yyyymmddThhmmssZ>
#
# A snapshot without its manifest is incomplete: data-restore.sh refuses it.
#
# Environment (besides Stamp's, see data-lib.sh):
#   STAMP_DATA_SNAPSHOT_BUCKET  required: bucket the snapshots go to, in any account. Its
#                               policy must let this account write, and the accounts that
#                               restore list and read (s3:ListBucket, s3:GetObject).
#   STAMP_DATA_KMS_KEY_ARN      required: customer-managed KMS key the copies are encrypted
#                               with; its key policy must let this account encrypt
#                               (kms:GenerateDataKey) and the restoring accounts decrypt
#                               (kms:Decrypt). The lake's own key (alias/<account>-lake) is
#                               not shared.
#
# aws s3 sync copies object by object, server side: the copy is consistent only when
# nothing writes to the lake meanwhile (as in `migrate`, on standby). Objects written
# during the copy may or may not be in it: the counts of the copy and of the source are
# both logged. Nothing is deleted (Stamp never deletes snapshots): expire old ones with a
# lifecycle rule on the snapshot bucket.

. "$(dirname "$0")/data-lib.sh"

require_env STAMP_DATA_SNAPSHOT_BUCKET
require_env STAMP_DATA_KMS_KEY_ARN
snapshot_bucket=$STAMP_DATA_SNAPSHOT_BUCKET
check_bucket_name "$snapshot_bucket" STAMP_DATA_SNAPSHOT_BUCKET

region=$(aws_region)
aws_account=$(aws_account_id)
taken_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
id="$STAMP_ACCOUNT-$(date -u +%Y%m%dT%H%M%SZ)"

existing=$(aws s3api list-objects-v2 --bucket "$snapshot_bucket" --prefix "$id/" \
	--max-items 1 --query 'Contents[].Key' --output json) ||
	fail "cannot list s3://$snapshot_bucket (may this account use it?)"
[ "$(printf '%s' "$existing" | jq '. // [] | length')" -eq 0 ] ||
	fail "s3://$snapshot_bucket/$id/ exists already: try again in a second"

counts='{}'
zones='{}'
for zone in $DATA_ZONES; do
	bucket=$(zone_bucket "$zone")
	target="s3://$snapshot_bucket/$id/$zone/"
	note "copy s3://$bucket/ to $target, encrypted with $STAMP_DATA_KMS_KEY_ARN"
	aws s3 sync "s3://$bucket/" "$target" --sse aws:kms --sse-kms-key-id "$STAMP_DATA_KMS_KEY_ARN" \
		--only-show-errors --no-progress >&2 ||
		fail "cannot copy s3://$bucket/ to $target"

	copied=$(count_objects "$snapshot_bucket" "$id/$zone/" "$zone" '[]')
	source_counts=$(count_objects "$bucket" "" "$zone" '[]')
	copied_total=$(printf '%s' "$copied" | jq '[.[].count] | add // 0')
	source_total=$(printf '%s' "$source_counts" | jq '[.[].count] | add // 0')
	if [ "$copied" = "$source_counts" ]; then
		note "$zone: $copied_total objects"
	else
		note "warning: $zone: $copied_total objects copied, $source_total in s3://$bucket/ now" \
			"(written meanwhile, or skipped: Glacier storage classes?)"
	fi
	counts=$(jq -nc --argjson a "$counts" --argjson b "$copied" '$a + $b')
	zones=$(jq -nc --argjson z "$zones" --arg zone "$zone" --arg bucket "$bucket" --arg prefix "$id/$zone/" \
		'$z + {($zone): {bucket: $bucket, prefix: $prefix}}')
done

manifest=$(jq -nS --arg id "$id" --arg account "$STAMP_ACCOUNT" --arg aws_account "$aws_account" \
	--arg region "$region" --arg version "${STAMP_VERSION:-}" --arg taken_at "$taken_at" \
	--arg key "$STAMP_DATA_KMS_KEY_ARN" --argjson zones "$zones" --argjson counts "$counts" \
	'{id: $id, account: $account, aws_account: $aws_account, region: $region,
	  environment_version: $version, taken_at: $taken_at, kms_key_arn: $key,
	  zones: $zones, counts: $counts}')
printf '%s\n' "$manifest" >"$DATA_TMP/manifest.json"
aws s3 cp "$DATA_TMP/manifest.json" "s3://$snapshot_bucket/$id/manifest.json" \
	--sse aws:kms --sse-kms-key-id "$STAMP_DATA_KMS_KEY_ARN" --content-type application/json \
	--only-show-errors --no-progress >&2 ||
	fail "cannot write s3://$snapshot_bucket/$id/manifest.json"
note "snapshot s3://$snapshot_bucket/$id/ complete"

printf '%s\n' "$id"

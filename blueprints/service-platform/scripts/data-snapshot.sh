#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `snapshot` (archetype.yaml `data:`): snapshots every RDS database of this
# account, copies each snapshot re-encrypted with a KMS key the target account may use,
# shares the copy, and prints one snapshot id for all of them as its last line:
#
#     <region>:<aws account id>:<account>-<UTC yyyymmddthhmmssz>
#
# data-restore.sh finds database <name>'s copy at
# arn:aws:rds:<region>:<aws account id>:snapshot:<account>-<time>-<name>-shared.
#
# Environment (besides Stamp's, see data-lib.sh):
#   STAMP_DATA_KMS_KEY_ARN  required: customer-managed KMS key the copies are encrypted
#                           with; its key policy must let the target accounts use it
#                           (kms:Decrypt, kms:DescribeKey, kms:CreateGrant). The
#                           databases' own key (alias/<account>-databases) is not shared.
#   STAMP_DATA_SHARE_WITH   optional: AWS account ids (12 digits, separated by spaces or
#                           commas) allowed to restore the copies; none: not shared.
#
# The databases are snapshotted one after the other: each is consistent, but they are
# consistent with each other only when nothing writes (as in `migrate`, on standby).
# Nothing is deleted: the unshared snapshots and the copies stay until you remove them
# (Stamp never deletes snapshots).

. "$(dirname "$0")/data-lib.sh"

require_env STAMP_DATA_KMS_KEY_ARN

share_with=$(printf '%s' "${STAMP_DATA_SHARE_WITH:-}" | tr ',' ' ')
for target in $share_with; do
	case $target in
	[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) ;;
	*) fail "STAMP_DATA_SHARE_WITH: $target is not a 12-digit AWS account id" ;;
	esac
done

region=$(aws_region)
aws_account=$(aws sts get-caller-identity --query Account --output text)
# RDS stores identifiers in lower case: write them so.
stem=$(printf '%s-%s' "$STAMP_ACCOUNT" "$(date -u +%Y%m%dt%H%M%Sz)" | tr '[:upper:]' '[:lower:]')
tags=$(jq -nc --arg account "$STAMP_ACCOUNT" --arg version "${STAMP_VERSION:-}" --arg stem "$stem" \
	'[{Key: "StampAccount", Value: $account}, {Key: "EnvironmentVersion", Value: $version},
	  {Key: "StampSnapshot", Value: $stem}]')

names=$(database_names)
[ -n "$names" ] || note "no databases in this account: the snapshot holds nothing"

while IFS= read -r name <&3; do
	[ -n "$name" ] || continue
	instance=$(terraform_identifier "$name")
	snapshot="$stem-$name"
	shared="$snapshot-shared"

	note "snapshot $snapshot of $instance"
	aws rds create-db-snapshot --db-instance-identifier "$instance" \
		--db-snapshot-identifier "$snapshot" --tags "$tags" --output json >/dev/null ||
		fail "cannot snapshot database instance $instance"
	wait_snapshot "$snapshot"

	note "copy $snapshot to $shared, encrypted with $STAMP_DATA_KMS_KEY_ARN"
	aws rds copy-db-snapshot --source-db-snapshot-identifier "$snapshot" \
		--target-db-snapshot-identifier "$shared" --kms-key-id "$STAMP_DATA_KMS_KEY_ARN" \
		--copy-tags --output json >/dev/null ||
		fail "cannot copy snapshot $snapshot with key $STAMP_DATA_KMS_KEY_ARN"
	wait_snapshot "$shared"

	for target in $share_with; do
		aws rds modify-db-snapshot-attribute --db-snapshot-identifier "$shared" \
			--attribute-name restore --values-to-add "$target" --output json >/dev/null ||
			fail "cannot share snapshot $shared with $target"
		note "shared $shared with $target"
	done
done 3<<EOF
$names
EOF

printf '%s:%s:%s\n' "$region" "$aws_account" "$stem"

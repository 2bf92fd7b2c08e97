#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `restore` (archetype.yaml `data:`): makes this account's lake hold snapshot
# STAMP_SNAPSHOT_ID (printed by data-snapshot.sh of account STAMP_SNAPSHOT_ACCOUNT):
#
# 1. reads s3://<STAMP_DATA_SNAPSHOT_BUCKET>/<id>/manifest.json (no manifest: the
#    snapshot is incomplete, or this account may not read it);
# 2. per zone, aws s3 sync --delete from <id>/<zone>/ into the zone's bucket, re-encrypted
#    with this account's lake key (STAMP_OUTPUT_LAKE_KMS_KEY_ARN): objects missing here or
#    different in size or newer in the snapshot are copied, objects the snapshot lacks are
#    deleted (versioned buckets keep them as noncurrent versions until their lifecycle
#    rule expires them: a way back);
# 3. checks that the counts per prefix are the manifest's;
# 4. starts the Glue crawlers that write to this account's database, so partitions match
#    the new objects; without crawlers it says how to repair the tables instead.
#
# Safe to run again: a second run copies and deletes nothing. NOT atomic: while it runs
# the buckets hold a mix of old and new objects. Stamp runs it on standby (writes denied
# to all but the hooks' principal, see data-availability.sh); after a failure run it again.
# aws s3 sync does not copy an object that has the snapshot's size and was written here
# after the snapshot was taken (e.g. restoring an older snapshot over newer data): set
# STAMP_DATA_RESTORE_COPY_ALL=1 to copy every object first (slower, costs more requests).
#
# Environment (besides Stamp's, see data-lib.sh): STAMP_DATA_SNAPSHOT_BUCKET (as for
# data-snapshot.sh); the snapshot bucket's policy and its KMS key's policy must let this
# account read (s3:ListBucket, s3:GetObject, kms:Decrypt).

. "$(dirname "$0")/data-lib.sh"

require_env STAMP_SNAPSHOT_ID
require_env STAMP_SNAPSHOT_ACCOUNT
require_env STAMP_DATA_SNAPSHOT_BUCKET
require_env STAMP_OUTPUT_LAKE_KMS_KEY_ARN
snapshot_bucket=$STAMP_DATA_SNAPSHOT_BUCKET
check_bucket_name "$snapshot_bucket" STAMP_DATA_SNAPSHOT_BUCKET
lake_key=$STAMP_OUTPUT_LAKE_KMS_KEY_ARN

id=$STAMP_SNAPSHOT_ID
case $id in
*[!A-Za-z0-9._-]* | .* | *..*) fail "invalid snapshot id $id: expected <account>-<time>" ;;
"$STAMP_SNAPSHOT_ACCOUNT"-*) ;;
*) fail "snapshot $id was not taken of account $STAMP_SNAPSHOT_ACCOUNT" ;;
esac

# 1. The manifest.
aws s3 cp "s3://$snapshot_bucket/$id/manifest.json" "$DATA_TMP/manifest.json" \
	--only-show-errors --no-progress >&2 ||
	fail "cannot read s3://$snapshot_bucket/$id/manifest.json: incomplete snapshot, or the bucket or its KMS key not shared with this account"
jq -e --arg id "$id" --arg account "$STAMP_SNAPSHOT_ACCOUNT" \
	'.id == $id and .account == $account and (.counts | type == "object")' \
	"$DATA_TMP/manifest.json" >/dev/null 2>&1 ||
	fail "s3://$snapshot_bucket/$id/manifest.json is not the manifest of $id of account $STAMP_SNAPSHOT_ACCOUNT"
expected=$(jq -S -c '.counts' "$DATA_TMP/manifest.json")

# 2. and 3. The objects, zone by zone, then their counts.
restored='{}'
for zone in $DATA_ZONES; do
	bucket=$(zone_bucket "$zone")
	source="s3://$snapshot_bucket/$id/$zone/"
	if [ "${STAMP_DATA_RESTORE_COPY_ALL:-0}" = 1 ]; then
		note "copy every object of $source into s3://$bucket/"
		aws s3 cp "$source" "s3://$bucket/" --recursive --sse aws:kms --sse-kms-key-id "$lake_key" \
			--only-show-errors --no-progress >&2 ||
			fail "cannot copy $source into s3://$bucket/"
	fi
	note "sync $source into s3://$bucket/ (with --delete), encrypted with $lake_key"
	aws s3 sync "$source" "s3://$bucket/" --delete --sse aws:kms --sse-kms-key-id "$lake_key" \
		--only-show-errors --no-progress >&2 ||
		fail "cannot sync $source into s3://$bucket/"
	zone_counts=$(count_objects "$bucket" "" "$zone" '[]')
	restored=$(jq -nc --argjson a "$restored" --argjson b "$zone_counts" '$a + $b')
done
restored=$(printf '%s' "$restored" | jq -S -c .)
if [ "$restored" != "$expected" ]; then
	differences=$(jq -nr --argjson want "$expected" --argjson got "$restored" '
		($want + $got) | keys[] as $k
		| select($want[$k].count != $got[$k].count)
		| "\($k): \($want[$k].count // 0) in the snapshot, \($got[$k].count // 0) here"')
	fail "after the sync the counts differ (is something writing? run it again):
$differences"
fi

# 4. The catalog.
crawlers=$(glue_crawlers)
if [ -z "$crawlers" ]; then
	note "no Glue crawler writes to database $STAMP_OUTPUT_GLUE_DATABASE: refresh the partitions" \
		"of its partitioned tables yourself, e.g. MSCK REPAIR TABLE <table> in Athena" \
		"(or ALTER TABLE ... ADD PARTITION, or partition projection)"
fi
while IFS= read -r crawler <&3; do
	[ -n "$crawler" ] || continue
	if aws glue start-crawler --name "$crawler" 2>"$DATA_TMP/err"; then
		note "started Glue crawler $crawler"
	elif grep -q 'CrawlerRunningException' "$DATA_TMP/err"; then
		note "Glue crawler $crawler is running already: start it again once it has finished"
	else
		fail "cannot start Glue crawler $crawler: $(cat "$DATA_TMP/err")"
	fi
done 3<<EOF
$crawlers
EOF

total=$(printf '%s' "$restored" | jq '[.[].count] | add // 0')
printf 'restored %s (%s objects) into %s\n' "$id" "$total" "$(printf '%s' "$STAMP_OUTPUT_BUCKETS" |
	jq -r '[.raw, .curated] | join(" and ")')"

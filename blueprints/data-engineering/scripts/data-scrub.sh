#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `scrub` (archetype.yaml `data:`), after a restore: removes personal data from
# the copy, the objects under the key prefixes in STAMP_DATA_PII_PREFIXES (`<zone>/<key
# prefix>`, separated by spaces, e.g. `raw/customers/ curated/people/`), without changing
# a count data-stats.sh compares. STAMP_DATA_PII_MODE says how:
#
# delete  (the default) deletes every version and delete marker under each prefix, so
#         nothing of it stays in the bucket's history. data-stats.sh leaves these
#         prefixes out of its counts, on the source as here, so the counts still match.
# mask    replaces every current object under each prefix by the output of
#         STAMP_DATA_MASK_COMMAND (run with `sh -c`, the object on its stdin, its key in
#         STAMP_DATA_MASK_KEY and its zone in STAMP_DATA_MASK_ZONE; e.g. a script that
#         blanks the name and e-mail columns of a Parquet or CSV file), under the same key:
#         one masked object per object, so the counts stay. Then it deletes the prefix's
#         older versions, which still hold the personal data. The command must leave
#         masked data as it is (a second run masks again) and must not print anything
#         but the masked object.
#
# Whichever mode: the Glue tables over these prefixes stay (empty, or masked). Run it on
# a restored copy only, NEVER on the account the data comes from: it deletes for good.
# Without STAMP_DATA_PII_PREFIXES it has nothing to do. Running it again changes nothing
# more (delete) or re-masks what is masked (mask). Keys containing a line feed are not
# handled by the mask mode (it stops at the first one).

. "$(dirname "$0")/data-lib.sh"

entries=$(pii_entries)
if [ -z "$entries" ]; then
	note "STAMP_DATA_PII_PREFIXES is empty: nothing to scrub"
	exit 0
fi
if [ "$DATA_PII_MODE" = mask ]; then
	require_env STAMP_DATA_MASK_COMMAND
fi

# purge_versions BUCKET PREFIX SELECT: deletes the versions and delete markers under
# PREFIX that the jq filter SELECT keeps (it sees {Key, VersionId, IsLatest, Marker}),
# 1000 a request.
purge_versions() {
	purge_out=$(aws s3api list-object-versions --bucket "$1" --prefix "$2" --output json \
		--query '{Versions: Versions[].{Key: Key, VersionId: VersionId, IsLatest: IsLatest},
		          DeleteMarkers: DeleteMarkers[].{Key: Key, VersionId: VersionId, IsLatest: IsLatest}}') ||
		fail "cannot list the versions under s3://$1/$2"
	printf '%s' "$purge_out" | jq -c "
		((.Versions // []) | map(. + {Marker: false})) + ((.DeleteMarkers // []) | map(. + {Marker: true}))
		| map(select($3) | {Key, VersionId})
		| . as \$all | range(0; length; 1000) | {Objects: \$all[.:. + 1000], Quiet: true}" \
		>"$DATA_TMP/batches" || fail "cannot read the versions under s3://$1/$2"
	purge_count=0
	while IFS= read -r purge_batch <&4; do
		printf '%s\n' "$purge_batch" >"$DATA_TMP/batch.json"
		purge_result=$(aws s3api delete-objects --bucket "$1" --delete "file://$DATA_TMP/batch.json" \
			--output json) || fail "cannot delete versions under s3://$1/$2"
		purge_errors=$(printf '%s' "$purge_result" | jq -r '(.Errors // [])[] | "\(.Key) \(.VersionId): \(.Code) \(.Message)"')
		[ -z "$purge_errors" ] || fail "cannot delete under s3://$1/$2: $purge_errors"
		purge_count=$((purge_count + $(printf '%s' "$purge_batch" | jq '.Objects | length')))
	done 4<"$DATA_TMP/batches"
	note "deleted $purge_count versions and delete markers under s3://$1/$2"
}

# mask_objects BUCKET PREFIX ZONE: replaces each current object under PREFIX by its masked
# form, encrypted with the lake key.
mask_objects() {
	mask_keys=$(aws s3api list-objects-v2 --bucket "$1" --prefix "$2" --query 'Contents[].Key' \
		--output json) || fail "cannot list s3://$1/$2"
	printf '%s' "$mask_keys" | jq -e '(. // []) | all(contains("\n") | not)' >/dev/null ||
		fail "s3://$1/$2 holds a key with a line feed: mask it by hand"
	printf '%s' "$mask_keys" | jq -r '(. // [])[] | select(endswith("/") | not)' >"$DATA_TMP/keys"
	mask_count=0
	while IFS= read -r mask_key <&4; do
		aws s3 cp "s3://$1/$mask_key" "$DATA_TMP/object" --only-show-errors --no-progress >&2 ||
			fail "cannot read s3://$1/$mask_key"
		STAMP_DATA_MASK_KEY=$mask_key STAMP_DATA_MASK_ZONE=$3 sh -c "$STAMP_DATA_MASK_COMMAND" \
			<"$DATA_TMP/object" >"$DATA_TMP/masked" ||
			fail "STAMP_DATA_MASK_COMMAND failed on s3://$1/$mask_key"
		aws s3 cp "$DATA_TMP/masked" "s3://$1/$mask_key" --sse aws:kms --sse-kms-key-id "$lake_key" \
			--only-show-errors --no-progress >&2 ||
			fail "cannot write s3://$1/$mask_key"
		mask_count=$((mask_count + 1))
	done 4<"$DATA_TMP/keys"
	note "masked $mask_count objects under s3://$1/$2"
}

if [ "$DATA_PII_MODE" = mask ]; then
	require_env STAMP_OUTPUT_LAKE_KMS_KEY_ARN
	lake_key=$STAMP_OUTPUT_LAKE_KMS_KEY_ARN
fi

while IFS=' ' read -r zone prefix <&3; do
	[ -n "$zone" ] || continue
	bucket=$(zone_bucket "$zone")
	case $DATA_PII_MODE in
	delete)
		note "deleting s3://$bucket/$prefix ($zone), all versions"
		purge_versions "$bucket" "$prefix" 'true'
		;;
	mask)
		note "masking s3://$bucket/$prefix ($zone)"
		mask_objects "$bucket" "$prefix" "$zone"
		purge_versions "$bucket" "$prefix" '.Marker or (.IsLatest | not)'
		;;
	esac
	printf 'scrubbed s3://%s/%s (%s)\n' "$bucket" "$prefix" "$DATA_PII_MODE"
done 3<<EOF
$entries
EOF

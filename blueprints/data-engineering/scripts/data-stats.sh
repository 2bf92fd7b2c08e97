#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `stats` (archetype.yaml `data:`): prints one JSON object,
#
#     {"data": {"curated.<prefix>": {"count": N}, ..., "raw.<prefix>": {"count": N}, ...}}
#
# with the number of current objects under every top-level prefix of the lake's raw and
# curated buckets (keys sorted; objects at a bucket's root count as `<zone>./`; folder
# markers are not counted), read-only: it only lists.
#
# With STAMP_DATA_PII_MODE=delete (the default), the objects under STAMP_DATA_PII_PREFIXES
# are left out of every count, here and on the source alike, since data-scrub.sh deletes
# them from a clone: a top-level prefix holding nothing else is not listed at all. With
# STAMP_DATA_PII_MODE=mask they count like any other (the scrub keeps one masked object
# for each). See data-lib.sh.

. "$(dirname "$0")/data-lib.sh"

pii_entries >/dev/null # checks STAMP_DATA_PII_PREFIXES

all='{}'
for zone in $DATA_ZONES; do
	bucket=$(zone_bucket "$zone")
	excluded=$(pii_excluded "$zone")
	note "counting the objects of s3://$bucket/ ($zone)"
	counts=$(count_objects "$bucket" "" "$zone" "$excluded")
	all=$(jq -nc --argjson all "$all" --argjson counts "$counts" '$all + $counts')
done

printf '%s' "$all" | jq -S -c '{data: .}'

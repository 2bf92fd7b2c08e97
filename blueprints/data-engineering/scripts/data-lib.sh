# shellcheck shell=sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Shared by the data-*.sh hooks (archetype.yaml `data:`); they source it. POSIX sh with
# AWS CLI v2 and jq. Every value goes through a quoted variable or jq --arg, never into
# a command line unquoted nor into a JMESPath expression.
#
# Assumptions, for every hook:
# - Credentials for this account's AWS account are in the environment (AWS_PROFILE,
#   AWS_ACCESS_KEY_ID..., or an instance role), with its region in AWS_REGION or
#   AWS_DEFAULT_REGION; or STAMP_DATA_ROLE_ARN names a role to assume first.
# - Terraform outputs arrive as STAMP_OUTPUT_<NAME>: BUCKETS (a JSON map role -> bucket
#   name), LAKE_KMS_KEY_ARN, GLUE_DATABASE and GLUE_JOB_ROLE_ARN.
# - The data is the current version of every object in the lake's two zones, `raw` and
#   `curated` (the Athena results bucket holds query results, not data: left out). Folder
#   markers (keys ending in `/`, as the S3 console makes them) are not data: not counted.
# - Objects are counted per zone and top-level prefix: `raw.events` counts the objects of
#   the raw bucket whose keys start with `events/`; objects at a bucket's root count as
#   `<zone>./`. Listing is a full scan of each bucket: fine for clones, slow for huge lakes.
# - aws s3 sync skips objects in the Glacier storage classes (with a warning): a zone with
#   a transition_to_glacier_days rule loses them in a copy, and stats then differ.
# - Personal data lives under the key prefixes in STAMP_DATA_PII_PREFIXES, each written
#   `<zone>/<key prefix>` and separated by spaces (e.g. `raw/customers/ curated/people/`).
#   STAMP_DATA_PII_MODE says what data-scrub.sh does with them, and so what data-stats.sh
#   counts: `delete` (the default) removes them, and stats leaves them out of every count
#   (on the source too, so counts still compare); `mask` replaces each object by a masked
#   one under the same key, so the count stays and stats counts them like any other.
#   Set the same two variables for every hook of a run (Stamp passes its environment on).
# - Not copied: the Glue catalog (tables are the same in every account; data-restore.sh
#   refreshes partitions) and tables stored in the Redshift Serverless namespace itself
#   (use its snapshots: aws redshift-serverless create-snapshot, restore-from-snapshot).

set -euf # no pathname expansion anywhere

AWS_PAGER=""
export AWS_PAGER
DATA_TMP=$(mktemp -d)
trap 'rm -rf "$DATA_TMP"' EXIT
trap 'exit 1' HUP INT TERM

fail() {
	printf '%s: error: %s\n' "${0##*/}" "$*" >&2
	exit 1
}

note() {
	printf '%s: %s\n' "${0##*/}" "$*" >&2
}

need_command() {
	command -v "$1" >/dev/null 2>&1 || fail "$1 is not installed ($2)"
}

# require_env NAME: fails unless the variable is set and not empty (NAME is a literal).
require_env() {
	eval "require_env_value=\${$1:-}"
	[ -n "$require_env_value" ] || fail "environment variable $1 is not set"
}

need_command aws "AWS CLI v2"
need_command jq "jq"
require_env STAMP_ACCOUNT

if [ -n "${STAMP_DATA_ROLE_ARN:-}" ]; then
	lib_creds=$(aws sts assume-role --role-arn "$STAMP_DATA_ROLE_ARN" \
		--role-session-name "stamp-data-$STAMP_ACCOUNT" --output json) ||
		fail "cannot assume role $STAMP_DATA_ROLE_ARN"
	AWS_ACCESS_KEY_ID=$(printf '%s' "$lib_creds" | jq -r '.Credentials.AccessKeyId')
	AWS_SECRET_ACCESS_KEY=$(printf '%s' "$lib_creds" | jq -r '.Credentials.SecretAccessKey')
	AWS_SESSION_TOKEN=$(printf '%s' "$lib_creds" | jq -r '.Credentials.SessionToken')
	export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
	unset lib_creds
fi

aws_region() {
	aws_region_value=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
	[ -n "$aws_region_value" ] || aws_region_value=$(aws configure get region 2>/dev/null || true)
	[ -n "$aws_region_value" ] || fail "no AWS region: set AWS_REGION"
	printf '%s\n' "$aws_region_value"
}

aws_account_id() {
	aws sts get-caller-identity --query Account --output text
}

# This environment's name in its slot, as Terraform's local.name (see locals.tf.j2).
# shellcheck disable=SC2034 # used by data-availability.sh
case ${STAMP_SLOT:-blue} in
blue) DATA_INSTANCE=$STAMP_ACCOUNT ;;
green) DATA_INSTANCE="$STAMP_ACCOUNT-green" ;;
*) fail "STAMP_SLOT must be blue or green, got $STAMP_SLOT" ;;
esac

# The lake --------------------------------------------------------------------------

DATA_ZONES="raw curated"

require_env STAMP_OUTPUT_BUCKETS
printf '%s' "$STAMP_OUTPUT_BUCKETS" |
	jq -e 'type == "object" and (.raw | type == "string") and (.curated | type == "string")' >/dev/null 2>&1 ||
	fail "STAMP_OUTPUT_BUCKETS is not a JSON object with the raw and curated buckets (is outputs.tf up to date?)"

# zone_bucket ZONE: the name of that zone's bucket.
zone_bucket() {
	printf '%s' "$STAMP_OUTPUT_BUCKETS" | jq -r --arg z "$1" '.[$z]'
}

# check_bucket_name NAME WHAT: fails unless NAME looks like an S3 bucket name.
check_bucket_name() {
	case $1 in
	*[!a-z0-9.-]* | [.-]* | *[.-] | ?? | ?) fail "$2: $1 is not an S3 bucket name" ;;
	esac
}

# count_objects BUCKET PREFIX ZONE EXCLUDED: the stats of BUCKET's current objects whose
# keys start with PREFIX (which is then cut off), as {"<zone>.<top-level prefix>":
# {"count": N}, ...}, leaving out folder markers and the keys (after PREFIX) that start
# with one of EXCLUDED (a JSON array of key prefixes). Any error fails.
count_objects() {
	if [ -n "$2" ]; then
		count_keys=$(aws s3api list-objects-v2 --bucket "$1" --prefix "$2" \
			--query 'Contents[].Key' --output json) || fail "cannot list s3://$1/$2"
	else
		count_keys=$(aws s3api list-objects-v2 --bucket "$1" \
			--query 'Contents[].Key' --output json) || fail "cannot list s3://$1/"
	fi
	printf '%s' "$count_keys" | jq -c --arg p "$2" --arg z "$3" --argjson x "$4" '
		(. // []) | map(select(startswith($p)) | .[($p | length):])
		| map(select(endswith("/") | not))
		| map(select(. as $k | any($x[]; . as $e | $k | startswith($e)) | not))
		| reduce .[] as $k ({};
			($z + "." + (if $k | contains("/") then $k | split("/")[0] else "/" end)) as $g
			| .[$g].count += 1)' ||
		fail "cannot count the objects of s3://$1/$2"
}

# Personal data -----------------------------------------------------------------------

DATA_PII_MODE=${STAMP_DATA_PII_MODE:-delete}
case $DATA_PII_MODE in
delete | mask) ;;
*) fail "STAMP_DATA_PII_MODE must be delete or mask, got $DATA_PII_MODE" ;;
esac

# pii_entries: the PII prefixes, one `<zone> <key prefix>` a line, checked.
pii_entries() {
	for pii_entry in ${STAMP_DATA_PII_PREFIXES:-}; do
		pii_zone=${pii_entry%%/*}
		pii_prefix=${pii_entry#*/}
		case $pii_entry in
		*/*) ;;
		*) fail "STAMP_DATA_PII_PREFIXES: $pii_entry is not <zone>/<key prefix>" ;;
		esac
		case " $DATA_ZONES " in
		*" $pii_zone "*) ;;
		*) fail "STAMP_DATA_PII_PREFIXES: $pii_entry is in no zone (raw or curated)" ;;
		esac
		[ -n "$pii_prefix" ] ||
			fail "STAMP_DATA_PII_PREFIXES: $pii_entry names a whole bucket; give a key prefix"
		printf '%s %s\n' "$pii_zone" "$pii_prefix"
	done
}

# pii_excluded ZONE: the key prefixes stats leaves out in ZONE, as a JSON array (the PII
# prefixes when they are deleted, none when they are masked).
pii_excluded() {
	if [ "$DATA_PII_MODE" = mask ]; then
		printf '[]\n'
		return 0
	fi
	pii_excluded_list=$(pii_entries)
	printf '%s\n' "$pii_excluded_list" | jq -R -s -c --arg z "$1" \
		'split("\n") | map(select(startswith($z + " ")) | .[($z | length) + 1:])'
}

# Glue --------------------------------------------------------------------------------

# glue_crawlers: the names of the crawlers that write to this account's Glue database,
# one a line.
glue_crawlers() {
	require_env STAMP_OUTPUT_GLUE_DATABASE
	glue_crawlers_out=$(aws glue get-crawlers --output json) || fail "cannot list the Glue crawlers"
	printf '%s' "$glue_crawlers_out" |
		jq -r --arg db "$STAMP_OUTPUT_GLUE_DATABASE" '.Crawlers[] | select(.DatabaseName == $db) | .Name'
}

# glue_triggers: the triggers that start this account's jobs (those running as the Glue
# job role) or crawlers, as a JSON array of {Name, Type, State}; with STAMP_DATA_GLUE_TRIGGERS
# (names separated by spaces) those triggers instead.
glue_triggers() {
	glue_triggers_out=$(aws glue get-triggers --output json) || fail "cannot list the Glue triggers"
	if [ -n "${STAMP_DATA_GLUE_TRIGGERS:-}" ]; then
		glue_names=$(printf '%s' "$STAMP_DATA_GLUE_TRIGGERS" | jq -R -c 'split(" ") | map(select(length > 0))')
		printf '%s' "$glue_triggers_out" | jq -c --argjson names "$glue_names" '
			[.Triggers[] | select(.Name as $n | any($names[]; . == $n))] as $found
			| ($names - [$found[].Name]) as $missing
			| if ($missing | length) > 0 then error("no Glue trigger " + ($missing | join(", "))) else $found end
			| map({Name, Type, State})' ||
			fail "STAMP_DATA_GLUE_TRIGGERS names triggers that do not exist"
		return 0
	fi
	require_env STAMP_OUTPUT_GLUE_JOB_ROLE_ARN
	glue_jobs_out=$(aws glue get-jobs --query 'Jobs[].{Name: Name, Role: Role}' --output json) ||
		fail "cannot list the Glue jobs"
	glue_jobs=$(printf '%s' "$glue_jobs_out" | jq -c --arg arn "$STAMP_OUTPUT_GLUE_JOB_ROLE_ARN" \
		'(. // []) | map(select(.Role == $arn or .Role == ($arn | split("/") | last)) | .Name)')
	glue_crawler_list=$(glue_crawlers)
	glue_crawler_names=$(printf '%s\n' "$glue_crawler_list" | jq -R -s -c 'split("\n") | map(select(length > 0))')
	printf '%s' "$glue_triggers_out" | jq -c --argjson jobs "$glue_jobs" --argjson crawlers "$glue_crawler_names" '
		[.Triggers[] | select(any(.Actions[]?;
			(.JobName as $j | $j != null and any($jobs[]; . == $j))
			or (.CrawlerName as $c | $c != null and any($crawlers[]; . == $c))))
		| {Name, Type, State}]'
}


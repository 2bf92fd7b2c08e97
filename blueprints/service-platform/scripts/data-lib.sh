# shellcheck shell=sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Shared by the data-*.sh hooks (archetype.yaml `data:`); they source it. POSIX sh with
# AWS CLI v2 and jq. Every value goes through a quoted variable or jq --arg, never into
# a command line unquoted nor into a JMESPath or SQL string.
#
# Assumptions, for every hook:
# - Credentials for this account's AWS account are in the environment (AWS_PROFILE,
#   AWS_ACCESS_KEY_ID..., or an instance role), with its region in AWS_REGION or
#   AWS_DEFAULT_REGION; or STAMP_DATA_ROLE_ARN names a role to assume first.
# - Terraform outputs arrive as STAMP_OUTPUT_<NAME>: DATABASE_IDENTIFIERS and
#   DATABASE_ENDPOINTS (JSON maps by database name; absent without databases) and
#   DNS_ZONE_ID (the private zone).
# - Applications reach database <name> through the CNAME <name>.db.<zone> (the label is
#   STAMP_DATA_DB_LABEL, default `db`). The hooks own that record: do not declare it in
#   config.dns.records, or the next apply would point it back at the old instance.
# - A restore creates a new instance next to the one Terraform manages and records it in
#   the TXT record _stamp-pending.<name>.db.<zone>; `availability active` moves the CNAME
#   to it. scrub and stats work on the pending instance when there is one, else on the
#   one the CNAME names, else on Terraform's.

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

# The databases: a JSON object name -> RDS instance identifier ({} without databases).
DATA_DATABASES=${STAMP_OUTPUT_DATABASE_IDENTIFIERS:-}
[ -n "$DATA_DATABASES" ] || DATA_DATABASES='{}'
printf '%s' "$DATA_DATABASES" | jq -e 'type == "object"' >/dev/null 2>&1 ||
	fail "STAMP_OUTPUT_DATABASE_IDENTIFIERS is not a JSON object (is outputs.tf up to date?)"

database_names() {
	printf '%s' "$DATA_DATABASES" | jq -r 'keys[]'
}

terraform_identifier() {
	printf '%s' "$DATA_DATABASES" | jq -r --arg n "$1" '.[$n]'
}

# describe_instance IDENTIFIER: the instance as JSON, nothing when there is none; any
# other error fails (call it as `x=$(describe_instance ...)`, never in a pipeline).
describe_instance() {
	if describe_out=$(aws rds describe-db-instances --db-instance-identifier "$1" \
		--output json 2>"$DATA_TMP/err"); then
		printf '%s' "$describe_out" | jq -c '.DBInstances[0] // empty'
	elif grep -q 'DBInstanceNotFound' "$DATA_TMP/err"; then
		return 0
	else
		fail "cannot describe database instance $1: $(cat "$DATA_TMP/err")"
	fi
}

# describe_snapshot IDENTIFIER_OR_ARN: the snapshot as JSON, nothing when there is none.
describe_snapshot() {
	if describe_out=$(aws rds describe-db-snapshots --db-snapshot-identifier "$1" \
		--include-shared --output json 2>"$DATA_TMP/err"); then
		printf '%s' "$describe_out" | jq -c '.DBSnapshots[0] // empty'
	elif grep -q 'DBSnapshotNotFound' "$DATA_TMP/err"; then
		return 0
	else
		fail "cannot describe snapshot $1: $(cat "$DATA_TMP/err")"
	fi
}

# wait_instance IDENTIFIER: until it is available (the hook's timeout bounds the wait).
wait_instance() {
	while :; do
		wait_json=$(describe_instance "$1")
		wait_status=$(printf '%s' "$wait_json" | jq -r '.DBInstanceStatus // "missing"')
		case $wait_status in
		available) return 0 ;;
		missing | failed | incompatible-* | inaccessible-* | storage-full | deleting)
			fail "database instance $1 is $wait_status" ;;
		esac
		note "database instance $1 is $wait_status; waiting"
		sleep 30
	done
}

# wait_snapshot IDENTIFIER: until it is available.
wait_snapshot() {
	while :; do
		wait_json=$(describe_snapshot "$1")
		wait_status=$(printf '%s' "$wait_json" | jq -r '.Status // "missing"')
		case $wait_status in
		available) return 0 ;;
		missing | failed | error) fail "snapshot $1 is $wait_status" ;;
		esac
		note "snapshot $1 is $wait_status; waiting"
		sleep 30
	done
}

# Route 53 ----------------------------------------------------------------------------

# load_zone: sets DATA_ZONE_ID and DATA_ZONE (the zone's name with its trailing dot,
# e.g. `prod.internal.acme.com.`). Call it once, at the top level, before the rest.
load_zone() {
	require_env STAMP_OUTPUT_DNS_ZONE_ID
	DATA_ZONE_ID=$STAMP_OUTPUT_DNS_ZONE_ID
	DATA_ZONE=$(aws route53 get-hosted-zone --id "$DATA_ZONE_ID" --query 'HostedZone.Name' --output text)
	[ -n "$DATA_ZONE" ] || fail "cannot read the hosted zone $DATA_ZONE_ID"
}

db_record() {
	printf '%s.%s.%s\n' "$1" "${STAMP_DATA_DB_LABEL:-db}" "$DATA_ZONE"
}

pending_record() {
	printf '_stamp-pending.%s\n' "$(db_record "$1")"
}

# record_set FQDN TYPE: the record set as JSON, or nothing when there is none.
record_set() {
	record_set_out=$(aws route53 list-resource-record-sets --hosted-zone-id "$DATA_ZONE_ID" \
		--start-record-name "$1" --start-record-type "$2" --max-items 1 --output json)
	printf '%s' "$record_set_out" |
		jq -c --arg n "$1" --arg t "$2" '.ResourceRecordSets[] | select(.Name == $n and .Type == $t)'
}

# record_value FQDN TYPE: the first value (TXT without its quotes), or nothing.
record_value() {
	record_value_set=$(record_set "$1" "$2")
	printf '%s' "$record_value_set" |
		jq -r '.ResourceRecords[0].Value // empty | ltrimstr("\"") | rtrimstr("\"")'
}

# upsert_change FQDN TYPE VALUE TTL: one change, as JSON (TXT values get their quotes here).
upsert_change() {
	jq -nc --arg n "$1" --arg t "$2" --arg v "$3" --argjson ttl "$4" \
		'{Action: "UPSERT", ResourceRecordSet: {Name: $n, Type: $t, TTL: $ttl,
		  ResourceRecords: [{Value: (if $t == "TXT" then "\"" + $v + "\"" else $v end)}]}}'
}

# delete_change RECORD_SET_JSON: one change deleting exactly that record set.
delete_change() {
	printf '%s' "$1" | jq -c '{Action: "DELETE", ResourceRecordSet: .}'
}

# apply_changes CHANGES_JSON_ARRAY COMMENT: one atomic change batch, then wait for INSYNC.
apply_changes() {
	[ "$(printf '%s' "$1" | jq 'length')" -gt 0 ] || return 0
	apply_batch=$(jq -nc --argjson c "$1" --arg m "$2" '{Comment: $m, Changes: $c}')
	apply_id=$(aws route53 change-resource-record-sets --hosted-zone-id "$DATA_ZONE_ID" \
		--change-batch "$apply_batch" --query 'ChangeInfo.Id' --output text)
	aws route53 wait resource-record-sets-changed --id "$apply_id"
}

# The instance that holds database NAME's data now: the pending restore, else the one the
# CNAME names (RDS endpoints start with the instance identifier), else Terraform's.
current_instance() {
	current=$(record_value "$(pending_record "$1")" TXT)
	[ -n "$current" ] || current=$(record_value "$(db_record "$1")" CNAME | cut -d. -f1)
	[ -n "$current" ] || current=$(terraform_identifier "$1")
	printf '%s\n' "$current"
}

# SQL --------------------------------------------------------------------------------

# connect_sql IDENTIFIER: sets DATA_ENGINE (postgres|mysql) and the client's connection
# variables (PGHOST... or MYSQL_*) from the instance and its Secrets Manager master secret.
# The password goes into the environment, never onto a command line. The instance must be
# reachable from where Stamp runs (it is private to the VPC: run inside it, or tunnel).
connect_sql() {
	connect_instance=$(describe_instance "$1")
	[ -n "$connect_instance" ] || fail "no database instance $1"
	DATA_ENGINE=$(printf '%s' "$connect_instance" | jq -r '.Engine')
	connect_secret_arn=$(printf '%s' "$connect_instance" | jq -r '.MasterUserSecret.SecretArn // empty')
	[ -n "$connect_secret_arn" ] || fail "database instance $1 has no master user secret in Secrets Manager"
	connect_secret=$(aws secretsmanager get-secret-value --secret-id "$connect_secret_arn" \
		--query SecretString --output text) || fail "cannot read the master secret of $1"
	connect_host=$(printf '%s' "$connect_instance" | jq -r '.Endpoint.Address')
	connect_port=$(printf '%s' "$connect_instance" | jq -r '.Endpoint.Port')
	connect_user=$(printf '%s' "$connect_secret" | jq -r '.username')
	connect_password=$(printf '%s' "$connect_secret" | jq -r '.password')
	connect_database=$(printf '%s' "$connect_instance" | jq -r '.DBName // empty')
	unset connect_secret
	case $DATA_ENGINE in
	postgres)
		need_command psql "PostgreSQL client"
		PGHOST=$connect_host PGPORT=$connect_port PGUSER=$connect_user PGPASSWORD=$connect_password
		PGDATABASE=${connect_database:-postgres} PGSSLMODE=require PGCONNECT_TIMEOUT=10
		export PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE PGCONNECT_TIMEOUT
		;;
	mysql)
		need_command mysql "MySQL client"
		MYSQL_HOST=$connect_host MYSQL_TCP_PORT=$connect_port MYSQL_USER=$connect_user
		MYSQL_PWD=$connect_password MYSQL_DATABASE=$connect_database
		export MYSQL_PWD
		;;
	*) fail "database instance $1: engine $DATA_ENGINE is not handled by this template" ;;
	esac
	unset connect_password
}

# run_psql ARGS...: psql with no ~/.psqlrc, stopping at the first error, unaligned output.
run_psql() {
	psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"
}

# run_mysql ARGS...: the MySQL 8 client over TLS, batch mode, no column names.
run_mysql() {
	if [ -n "$MYSQL_DATABASE" ]; then
		set -- --database="$MYSQL_DATABASE" "$@"
	fi
	mysql --protocol=TCP --ssl-mode=REQUIRED --batch --skip-column-names \
		--host="$MYSQL_HOST" --port="$MYSQL_TCP_PORT" --user="$MYSQL_USER" "$@"
}

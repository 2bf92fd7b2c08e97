#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `stats` (archetype.yaml `data:`): prints one JSON object,
#
#     {"data": {"<database>.<schema>.<table>": {"count": N}, ...}}
#
# with the exact row count of every table of every database of this account (keys
# sorted), read-only. Database <name> is read on the instance that holds its data now:
# its pending restore, else the one <name>.db.<zone> names, else Terraform's.
#
# Assumptions: the instances are private to the VPC, so this runs where it can reach them
# (a runner inside the VPC, or a tunnel: adapt the host); it connects as the master user,
# password from the instance's Secrets Manager secret, over TLS, with psql (postgres) or
# the MySQL 8 client (mysql). The RDS Data API would avoid the network path but serves
# Aurora only. PostgreSQL: every table outside pg_catalog and information_schema, in a
# read-only transaction. MySQL: every table outside the system schemas, in a read-only
# session. Counting is a full scan of each table: fine for clones, slow for huge tables
# (use estimates there and compare them with a tolerance).

. "$(dirname "$0")/data-lib.sh"

load_zone

PG_COUNTS=$(
	cat <<'SQL'
SELECT coalesce(json_object_agg(name, json_build_object('count', count) ORDER BY name), '{}')
FROM (
    SELECT table_schema || '.' || table_name AS name,
           (xpath('/row/c/text()', query_to_xml(
               format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text::bigint AS count
    FROM information_schema.tables
    WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
) AS tables
SQL
)

# Writes one SELECT per table, joined by UNION ALL; the second call runs it.
MYSQL_COUNT_QUERY=$(
	cat <<'SQL'
SET SESSION group_concat_max_len = 16777216;
SELECT GROUP_CONCAT(
    CONCAT('SELECT ', QUOTE(CONCAT(table_schema, '.', table_name)), ', COUNT(*) FROM `',
           REPLACE(table_schema, '`', '``'), '`.`', REPLACE(table_name, '`', '``'), '`')
    SEPARATOR ' UNION ALL ')
FROM information_schema.tables
WHERE table_type = 'BASE TABLE'
  AND table_schema NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema')
SQL
)

all='{}'
names=$(database_names)
while IFS= read -r name <&3; do
	[ -n "$name" ] || continue
	instance=$(current_instance "$name")
	connect_sql "$instance"
	note "counting the rows of $name on $instance ($DATA_ENGINE)"
	case $DATA_ENGINE in
	postgres)
		counts=$(PGOPTIONS='-c default_transaction_read_only=on' run_psql -c "$PG_COUNTS" </dev/null) ||
			fail "cannot count the rows of $name on $instance"
		;;
	mysql)
		query=$(run_mysql --raw -e "$MYSQL_COUNT_QUERY" </dev/null) ||
			fail "cannot list the tables of $name on $instance"
		if [ -z "$query" ] || [ "$query" = "NULL" ]; then
			counts='{}'
		else
			rows=$(run_mysql --raw -e "SET SESSION TRANSACTION READ ONLY; $query" </dev/null) ||
				fail "cannot count the rows of $name on $instance"
			counts=$(printf '%s\n' "$rows" | jq -R -s -c 'split("\n") | map(select(length > 0) | split("\t"))
				| map({key: .[0], value: {count: (.[1] | tonumber)}}) | from_entries')
		fi
		;;
	esac
	all=$(jq -nc --argjson all "$all" --argjson counts "$counts" --arg db "$name" \
		'$all + ($counts | with_entries(.key = $db + "." + .key))')
done 3<<EOF
$names
EOF

printf '%s' "$all" | jq -S -c '{data: .}'

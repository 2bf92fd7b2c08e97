#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `scrub` (archetype.yaml `data:`), after a restore: makes the copy safe to use
# outside production without changing any row count. Per database, in one transaction:
#
# - every row of `credentials` gets a fresh random password_hash and an api_key with the
#   `sk_test_` prefix (never a live key in a clone);
# - every customer's name becomes `Customer <id>` and e-mail customer<id>@scrubbed.invalid.
#
# ADAPT the SQL below to your schema: these tables and columns are those of the
# local-platform example, and tables that do not exist are skipped. Application roles
# restored with the data keep the source's passwords: rotate them here too (ALTER ROLE /
# ALTER USER with passwords from this account's secret store). The master password was
# rotated by data-restore.sh.
#
# Database <name> is scrubbed on the instance that holds its data now (its pending
# restore, else the one <name>.db.<zone> names, else Terraform's); connection as in
# data-stats.sh. PostgreSQL 13 or later (gen_random_uuid), MySQL 8 (RANDOM_BYTES).

. "$(dirname "$0")/data-lib.sh"

load_zone

PG_SCRUB=$(
	cat <<'SQL'
DO $$
BEGIN
    IF to_regclass('credentials') IS NOT NULL THEN
        UPDATE credentials
           SET password_hash = 'sha256$' || replace(gen_random_uuid()::text, '-', '')
                                         || replace(gen_random_uuid()::text, '-', ''),
               api_key = 'sk_test_' || replace(gen_random_uuid()::text, '-', '');
    END IF;
    IF to_regclass('customers') IS NOT NULL THEN
        UPDATE customers
           SET name = 'Customer ' || lpad(id::text, 6, '0'),
               email = 'customer' || id || '@scrubbed.invalid';
    END IF;
END
$$;
SQL
)

MYSQL_SCRUB_CREDENTIALS="UPDATE credentials SET password_hash = CONCAT('sha256\$', SHA2(RANDOM_BYTES(32), 256)),
    api_key = CONCAT('sk_test_', LOWER(HEX(RANDOM_BYTES(16))))"
MYSQL_SCRUB_CUSTOMERS="UPDATE customers SET name = CONCAT('Customer ', LPAD(id, 6, '0')),
    email = CONCAT('customer', id, '@scrubbed.invalid')"
MYSQL_TABLES="SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ('credentials', 'customers')"

names=$(database_names)
while IFS= read -r name <&3; do
	[ -n "$name" ] || continue
	instance=$(current_instance "$name")
	connect_sql "$instance"
	note "scrubbing $name on $instance ($DATA_ENGINE)"
	case $DATA_ENGINE in
	postgres)
		run_psql --single-transaction -c "$PG_SCRUB" </dev/null ||
			fail "cannot scrub $name on $instance"
		;;
	mysql)
		tables=$(run_mysql -e "$MYSQL_TABLES" </dev/null) || fail "cannot list the tables of $name on $instance"
		statements="START TRANSACTION;"
		case " $(printf '%s' "$tables" | tr '\n' ' ') " in
		*" credentials "*) statements="$statements $MYSQL_SCRUB_CREDENTIALS;" ;;
		esac
		case " $(printf '%s' "$tables" | tr '\n' ' ') " in
		*" customers "*) statements="$statements $MYSQL_SCRUB_CUSTOMERS;" ;;
		esac
		run_mysql -e "$statements COMMIT;" </dev/null || fail "cannot scrub $name on $instance"
		;;
	esac
	printf 'scrubbed %s on %s\n' "$name" "$instance"
done 3<<EOF
$names
EOF

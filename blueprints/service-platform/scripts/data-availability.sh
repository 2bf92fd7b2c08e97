#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `availability` (archetype.yaml `data:`), with STAMP_AVAILABILITY:
#
# standby  points the service record <STAMP_DATA_SERVICE_RECORD>.<zone> (a CNAME,
#          default `api`) at STAMP_DATA_MAINTENANCE_TARGET (e.g. a load balancer serving
#          a maintenance page) and keeps its live value in the TXT record
#          _stamp-active.<record>.<zone>, in one change batch.
# active   points every database CNAME <name>.db.<zone> at its pending restore (see
#          data-restore.sh; the pending record is removed) or, when the CNAME is missing,
#          at Terraform's instance; then points the service record back at its live value
#          (STAMP_DATA_SERVICE_TARGET if set, else the kept one), all in one change batch.
#
# Route 53 UPSERTs; each batch is atomic and waited for until INSYNC. Running it twice
# changes nothing the second time. The service record is usually config.dns.records':
# Terraform would put its configured value back, so apply nothing while on standby.

. "$(dirname "$0")/data-lib.sh"

require_env STAMP_AVAILABILITY
load_zone

service=${STAMP_DATA_SERVICE_RECORD:-api}
if [ "$service" = "@" ]; then
	service_fqdn=$DATA_ZONE
else
	service_fqdn="$service.$DATA_ZONE"
fi
kept_fqdn="_stamp-active.$service_fqdn"
service_set=$(record_set "$service_fqdn" CNAME)
service_value=$(printf '%s' "$service_set" | jq -r '.ResourceRecords[0].Value // empty')
service_ttl=$(printf '%s' "$service_set" | jq -r '.TTL // 60')
kept_set=$(record_set "$kept_fqdn" TXT)
kept_value=$(record_value "$kept_fqdn" TXT)

case $STAMP_AVAILABILITY in
standby)
	require_env STAMP_DATA_MAINTENANCE_TARGET
	maintenance=$STAMP_DATA_MAINTENANCE_TARGET
	[ -n "$service_value" ] || fail "no CNAME record $service_fqdn to put on standby"
	if [ "${service_value%.}" = "${maintenance%.}" ]; then
		note "$service_fqdn already points at $maintenance"
	else
		changes=$(jq -nc --argjson a "$(upsert_change "$kept_fqdn" TXT "$service_value" 300)" \
			--argjson b "$(upsert_change "$service_fqdn" CNAME "$maintenance" "$service_ttl")" '[$a, $b]')
		apply_changes "$changes" "stamp: $STAMP_ACCOUNT on standby"
	fi
	printf '%s: standby (%s -> %s)\n' "$STAMP_ACCOUNT" "$service_fqdn" "$maintenance"
	;;
active)
	changes='[]'
	names=$(database_names)
	while IFS= read -r name <&3; do
		[ -n "$name" ] || continue
		record=$(db_record "$name")
		pending_set=$(record_set "$(pending_record "$name")" TXT)
		pending=$(record_value "$(pending_record "$name")" TXT)
		target=""
		if [ -n "$pending" ]; then
			instance=$(describe_instance "$pending")
			[ -n "$instance" ] || fail "pending restore $pending of $name does not exist"
			target=$(printf '%s' "$instance" | jq -r '.Endpoint.Address')
			changes=$(jq -nc --argjson c "$changes" --argjson d "$(delete_change "$pending_set")" '$c + [$d]')
		elif [ -z "$(record_value "$record" CNAME)" ]; then
			target=$(printf '%s' "${STAMP_OUTPUT_DATABASE_ENDPOINTS:-}" |
				jq -r --arg n "$name" '.[$n] // empty | sub(":[0-9]+$"; "")')
			[ -n "$target" ] || fail "no endpoint of database $name in STAMP_OUTPUT_DATABASE_ENDPOINTS"
		fi
		if [ -n "$target" ]; then
			note "$record -> $target"
			changes=$(jq -nc --argjson c "$changes" --argjson u "$(upsert_change "$record" CNAME "$target" 60)" \
				'$c + [$u]')
		fi
	done 3<<EOF
$names
EOF
	live=${STAMP_DATA_SERVICE_TARGET:-$kept_value}
	if [ -z "$live" ]; then
		maintenance=${STAMP_DATA_MAINTENANCE_TARGET:-}
		if [ -z "$service_value" ] || [ "${service_value%.}" = "${maintenance%.}" ]; then
			fail "the live value of $service_fqdn is unknown (none was kept): set STAMP_DATA_SERVICE_TARGET"
		fi
		live=$service_value
	fi
	if [ "${service_value%.}" != "${live%.}" ]; then
		changes=$(jq -nc --argjson c "$changes" --argjson u "$(upsert_change "$service_fqdn" CNAME "$live" "$service_ttl")" \
			'$c + [$u]')
	fi
	if [ -n "$kept_set" ]; then
		changes=$(jq -nc --argjson c "$changes" --argjson d "$(delete_change "$kept_set")" '$c + [$d]')
	fi
	apply_changes "$changes" "stamp: $STAMP_ACCOUNT active"
	printf '%s: active (%s -> %s)\n' "$STAMP_ACCOUNT" "$service_fqdn" "$live"
	;;
*) fail "STAMP_AVAILABILITY must be standby or active, got $STAMP_AVAILABILITY" ;;
esac

#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `restore` (archetype.yaml `data:`): restores STAMP_SNAPSHOT_ID (printed by
# data-snapshot.sh of account STAMP_SNAPSHOT_ACCOUNT, `<region>:<aws account>:<stem>`)
# into every database of this account. For database <name>, with <instance> the
# identifier Terraform gave it:
#
# 1. copies the shared snapshot <stem>-<name>-shared into this account, re-encrypted
#    with <instance>'s own KMS key, as <stem>-<name>-local;
# 2. restores that copy into a NEW instance <instance>-r<checksum of the id>, with
#    <instance>'s class, storage type, subnet, parameter and security groups and Multi-AZ
#    setting, and has RDS put a fresh master password in this account's Secrets Manager
#    (the snapshot carries the source's);
# 3. records the new instance in the TXT record _stamp-pending.<name>.db.<zone>.
#
# The application keeps using <name>.db.<zone>, which still names the old instance:
# `data-availability.sh` with STAMP_AVAILABILITY=active moves it to the new one. data-scrub.sh
# and data-stats.sh work on the pending instance. Re-running with the same id redoes
# nothing that is done. Old instances are kept (a way back); delete them when you are
# sure. To make the data Terraform's again: snapshot the restored (scrubbed) instance,
# set `databases.<name>.snapshot_id` to that snapshot in the account file and apply
# (which replaces Terraform's instance with one restored from it), delete the CNAME, and
# run `availability active`, which points a missing CNAME at Terraform's instance.
#
# Assumes the snapshot is in this account's region and the aws partition, and that the
# target's databases have the source's names (allowed_differences keeps them equal).

. "$(dirname "$0")/data-lib.sh"

require_env STAMP_SNAPSHOT_ID
require_env STAMP_SNAPSHOT_ACCOUNT
load_zone

snapshot_id=$STAMP_SNAPSHOT_ID
case $snapshot_id in
*[!a-z0-9:-]* | *:*:*:*) fail "invalid snapshot id $snapshot_id: expected <region>:<aws account id>:<stem>" ;;
*:*:*) ;;
*) fail "invalid snapshot id $snapshot_id: expected <region>:<aws account id>:<stem>" ;;
esac
snapshot_region=${snapshot_id%%:*}
rest=${snapshot_id#*:}
snapshot_aws_account=${rest%%:*}
stem=${rest#*:}
case $snapshot_aws_account in
[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]) ;;
*) fail "invalid snapshot id $snapshot_id: $snapshot_aws_account is not an AWS account id" ;;
esac
case $stem in
"$STAMP_SNAPSHOT_ACCOUNT"-*) ;;
*) fail "snapshot $snapshot_id was not taken of account $STAMP_SNAPSHOT_ACCOUNT" ;;
esac
region=$(aws_region)
[ "$snapshot_region" = "$region" ] ||
	fail "snapshot $snapshot_id is in $snapshot_region, this account in $region: copy it across regions first"

suffix=$(printf '%s' "$snapshot_id" | cksum | cut -d ' ' -f 1)
tags=$(jq -nc --arg account "$STAMP_ACCOUNT" --arg snapshot "$snapshot_id" \
	'[{Key: "StampAccount", Value: $account}, {Key: "StampRestoredFrom", Value: $snapshot}]')

names=$(database_names)
[ -n "$names" ] || note "no databases in this account: nothing to restore"

while IFS= read -r name <&3; do
	[ -n "$name" ] || continue
	instance=$(terraform_identifier "$name")
	shared="arn:aws:rds:$region:$snapshot_aws_account:snapshot:$stem-$name-shared"
	local_copy="$stem-$name-local"
	restored="$instance-r$suffix"
	[ "${#restored}" -le 63 ] || fail "instance identifier $restored is longer than 63 characters"

	current=$(describe_instance "$instance")
	[ -n "$current" ] || fail "no database instance $instance (is the environment deployed?)"

	# 1. A copy in this account, with this database's key.
	existing=$(describe_snapshot "$local_copy")
	if [ -z "$existing" ]; then
		found=$(describe_snapshot "$shared")
		[ -n "$found" ] || fail "snapshot $shared not found or not shared with this account"
		kms_key=$(printf '%s' "$current" | jq -r '.KmsKeyId')
		note "copy $shared to $local_copy with key $kms_key"
		aws rds copy-db-snapshot --source-db-snapshot-identifier "$shared" \
			--target-db-snapshot-identifier "$local_copy" --kms-key-id "$kms_key" \
			--tags "$tags" --output json >/dev/null ||
			fail "cannot copy snapshot $shared (is its KMS key shared with this account?)"
	fi
	wait_snapshot "$local_copy"

	# 2. A new instance from it, shaped like the current one.
	existing=$(describe_instance "$restored")
	if [ -z "$existing" ]; then
		class=$(printf '%s' "$current" | jq -r '.DBInstanceClass')
		subnet_group=$(printf '%s' "$current" | jq -r '.DBSubnetGroup.DBSubnetGroupName')
		parameter_group=$(printf '%s' "$current" | jq -r '.DBParameterGroups[0].DBParameterGroupName')
		storage_type=$(printf '%s' "$current" | jq -r '.StorageType')
		multi_az=$(printf '%s' "$current" | jq -r 'if .MultiAZ then "--multi-az" else "--no-multi-az" end')
		groups=$(printf '%s' "$current" | jq -r '.VpcSecurityGroups[].VpcSecurityGroupId')
		set --
		while IFS= read -r group <&4; do
			[ -n "$group" ] && set -- "$@" "$group"
		done 4<<GROUPS
$groups
GROUPS
		[ "$#" -gt 0 ] || fail "database instance $instance has no security groups"
		note "restore $local_copy into $restored"
		aws rds restore-db-instance-from-db-snapshot --db-instance-identifier "$restored" \
			--db-snapshot-identifier "$local_copy" --db-instance-class "$class" \
			--db-subnet-group-name "$subnet_group" --db-parameter-group-name "$parameter_group" \
			--storage-type "$storage_type" --vpc-security-group-ids "$@" \
			"$multi_az" --no-publicly-accessible --copy-tags-to-snapshot \
			--tags "$tags" --output json >/dev/null ||
			fail "cannot restore $local_copy into $restored"
	fi
	wait_instance "$restored"

	# The snapshot's master password is the source's: have RDS make and keep a new one.
	restored_json=$(describe_instance "$restored")
	if [ -z "$(printf '%s' "$restored_json" | jq -r '.MasterUserSecret.SecretArn // empty')" ]; then
		note "rotate the master password of $restored into Secrets Manager"
		aws rds modify-db-instance --db-instance-identifier "$restored" \
			--manage-master-user-password --apply-immediately --output json >/dev/null ||
			fail "cannot rotate the master password of $restored"
		sleep 30
		wait_instance "$restored"
	fi

	# 3. The pending record, for scrub, stats and `availability active`.
	apply_changes "[$(upsert_change "$(pending_record "$name")" TXT "$restored" 60)]" \
		"stamp: $restored holds $name restored from $snapshot_id"
	printf 'restored %s (%s) into %s; availability active points %s at it\n' \
		"$name" "$snapshot_id" "$restored" "$(db_record "$name")"
done 3<<EOF
$names
EOF

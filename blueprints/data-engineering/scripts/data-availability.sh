#!/bin/sh
# TEMPLATE, not tested against AWS here: adapt it and try it on a playground first.
#
# Data hook `availability` (archetype.yaml `data:`), with STAMP_AVAILABILITY:
#
# standby  stops the Glue triggers that start this account's jobs (those running as the
#          Glue job role) or crawlers (those writing to its database), or the triggers
#          STAMP_DATA_GLUE_TRIGGERS names, tagging each StampStandby=<account in its
#          slot> so `active` knows which ones it stopped; then adds to the policy of the
#          raw and curated buckets, next to their own statements, one statement with Sid
#          StampStandby that denies object writes and deletes to every principal but the
#          one running this hook (the one data-restore.sh runs as: matched on aws:userid,
#          i.e. the role and any of its sessions).
# active   removes exactly that statement from each policy, then starts again the
#          triggers tagged StampStandby=<account in its slot> and removes the tag.
#
# Running it twice changes nothing the second time. On-demand triggers are left alone
# (starting one runs it), and so are triggers that were not running at standby. Job and
# crawler runs already going on keep running and fail when they write: wait for them
# first, or stop them (aws glue batch-stop-job-run, stop-crawler). Terraform owns the
# bucket policies (lake.tf): an apply while on standby removes the statement, so apply
# nothing until `active`. Readers (Athena, Redshift Spectrum) keep working on standby.

. "$(dirname "$0")/data-lib.sh"

require_env STAMP_AVAILABILITY
SID=StampStandby

region=$(aws_region)
aws_account=$(aws_account_id)

# bucket_policy BUCKET: its policy (JSON), or nothing when it has none.
bucket_policy() {
	if policy_out=$(aws s3api get-bucket-policy --bucket "$1" --query Policy --output text \
		2>"$DATA_TMP/err"); then
		printf '%s\n' "$policy_out"
	elif grep -q 'NoSuchBucketPolicy' "$DATA_TMP/err"; then
		return 0
	else
		fail "cannot read the policy of bucket $1: $(cat "$DATA_TMP/err")"
	fi
}

# put_policy BUCKET POLICY: sets it, or deletes the policy when POLICY has no statement.
put_policy() {
	if [ "$(printf '%s' "$2" | jq '.Statement | length')" -eq 0 ]; then
		aws s3api delete-bucket-policy --bucket "$1" || fail "cannot delete the policy of bucket $1"
		return 0
	fi
	printf '%s\n' "$2" >"$DATA_TMP/policy.json"
	aws s3api put-bucket-policy --bucket "$1" --policy "file://$DATA_TMP/policy.json" ||
		fail "cannot set the policy of bucket $1"
}

trigger_arn() {
	printf 'arn:aws:glue:%s:%s:trigger/%s\n' "$region" "$aws_account" "$1"
}

# trigger_state NAME
trigger_state() {
	aws glue get-trigger --name "$1" --query Trigger.State --output text ||
		fail "cannot read Glue trigger $1"
}

case $STAMP_AVAILABILITY in
standby)
	# The principal running the hooks keeps writing (the restore comes next).
	caller=$(aws sts get-caller-identity --query UserId --output text)
	case $caller in
	*:*) writer="${caller%%:*}:*" ;; # a role: any of its sessions
	?*) writer=$caller ;;            # a user
	*) fail "cannot tell who runs this hook" ;;
	esac

	# 1. No more scheduled or triggered Glue runs.
	triggers=$(glue_triggers)
	tag=$(jq -nc --arg v "$DATA_INSTANCE" --arg k "$SID" '{($k): $v}')
	printf '%s' "$triggers" | jq -r '.[]
		| select((.Type == "SCHEDULED" or .Type == "CONDITIONAL" or .Type == "EVENT")
		         and (.State == "ACTIVATED" or .State == "ACTIVATING")) | .Name' >"$DATA_TMP/triggers"
	while IFS= read -r trigger <&3; do
		[ -n "$trigger" ] || continue
		# Tag first: a run that stops between the two still lets `active` start it again.
		aws glue tag-resource --resource-arn "$(trigger_arn "$trigger")" --tags-to-add "$tag" ||
			fail "cannot tag Glue trigger $trigger"
		aws glue stop-trigger --name "$trigger" --output json >/dev/null ||
			fail "cannot stop Glue trigger $trigger"
		note "stopped Glue trigger $trigger"
	done 3<"$DATA_TMP/triggers"

	# 2. No more writes to the lake.
	for zone in $DATA_ZONES; do
		bucket=$(zone_bucket "$zone")
		statement=$(jq -nSc --arg sid "$SID" --arg bucket "$bucket" --arg writer "$writer" '{
			Sid: $sid, Effect: "Deny", Principal: "*",
			Action: ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
			         "s3:PutObjectTagging", "s3:DeleteObjectTagging", "s3:RestoreObject"],
			Resource: ("arn:aws:s3:::" + $bucket + "/*"),
			Condition: {StringNotLike: {"aws:userid": [$writer]}}}')
		policy=$(bucket_policy "$bucket")
		[ -n "$policy" ] || policy='{"Version": "2012-10-17", "Statement": []}'
		current=$(printf '%s' "$policy" | jq -Sc --arg sid "$SID" \
			'[.Statement | if type == "array" then .[] else . end | select(.Sid == $sid)]')
		if [ "$current" = "[$statement]" ]; then
			note "bucket $bucket already denies writes"
			continue
		fi
		policy=$(printf '%s' "$policy" | jq -c --arg sid "$SID" --argjson s "$statement" \
			'.Statement = ([.Statement | if type == "array" then .[] else . end | select(.Sid != $sid)] + [$s])')
		put_policy "$bucket" "$policy"
		note "bucket $bucket denies writes to all but $writer"
	done
	printf '%s: standby (lake read-only, Glue triggers stopped)\n' "$STAMP_ACCOUNT"
	;;
active)
	# 1. Writes again.
	for zone in $DATA_ZONES; do
		bucket=$(zone_bucket "$zone")
		policy=$(bucket_policy "$bucket")
		[ -n "$policy" ] || continue
		found=$(printf '%s' "$policy" | jq --arg sid "$SID" \
			'[.Statement | if type == "array" then .[] else . end | select(.Sid == $sid)] | length')
		[ "$found" -gt 0 ] || continue
		policy=$(printf '%s' "$policy" | jq -c --arg sid "$SID" \
			'.Statement = [.Statement | if type == "array" then .[] else . end | select(.Sid != $sid)]')
		put_policy "$bucket" "$policy"
		note "bucket $bucket takes writes again"
	done

	# 2. The triggers standby stopped.
	tag=$(jq -nc --arg v "$DATA_INSTANCE" --arg k "$SID" '{($k): $v}')
	tagged=$(aws glue list-triggers --tags "$tag" --query TriggerNames --output json) ||
		fail "cannot list the Glue triggers tagged $SID=$DATA_INSTANCE"
	printf '%s' "$tagged" | jq -r '(. // [])[]' >"$DATA_TMP/triggers"
	while IFS= read -r trigger <&3; do
		[ -n "$trigger" ] || continue
		state=$(trigger_state "$trigger")
		while [ "$state" = DEACTIVATING ]; do
			note "Glue trigger $trigger is $state; waiting"
			sleep 5
			state=$(trigger_state "$trigger")
		done
		if [ "$state" = DEACTIVATED ]; then
			aws glue start-trigger --name "$trigger" --output json >/dev/null ||
				fail "cannot start Glue trigger $trigger"
			note "started Glue trigger $trigger"
		fi
		aws glue untag-resource --resource-arn "$(trigger_arn "$trigger")" --tags-to-remove "$SID" ||
			fail "cannot untag Glue trigger $trigger"
	done 3<"$DATA_TMP/triggers"
	printf '%s: active (lake writable, Glue triggers started)\n' "$STAMP_ACCOUNT"
	;;
*) fail "STAMP_AVAILABILITY must be standby or active, got $STAMP_AVAILABILITY" ;;
esac

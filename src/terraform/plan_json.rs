//! Terraform's JSON plan (`terraform show -json PLANFILE`): what a saved plan will really do
//! (protection is decided from it, never from a summary stored beside it), and the same JSON
//! with every value Terraform marks sensitive, and every input variable, replaced, so it can be
//! kept in an artifact.

use serde_json::Value;

use super::plan::{Action, PlanSummary, ResourceChange};
use crate::schema::redact::REDACTED;

/// The summary of a JSON plan. `is_stateful` decides, by resource type and address, which
/// resources hold data. `Err` says why the text is not a JSON plan.
pub fn summary(json: &str, is_stateful: &dyn Fn(&str, &str) -> bool) -> Result<PlanSummary, String> {
    let plan: Value = serde_json::from_str(json).map_err(|e| format!("not a JSON plan: {e}"))?;
    if !plan.get("format_version").is_some_and(Value::is_string) {
        return Err("not a JSON plan: it has no `format_version`".into());
    }
    let mut summary = PlanSummary {
        terraform_version: plan.get("terraform_version").and_then(Value::as_str).map(str::to_string),
        ..PlanSummary::default()
    };
    for change in plan.get("resource_changes").and_then(Value::as_array).into_iter().flatten() {
        let text = |key: &str| change.get(key).and_then(Value::as_str).unwrap_or_default();
        let actions: Vec<&str> = change
            .pointer("/change/actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let previous = change.get("previous_address").and_then(Value::as_str);
        let moved = previous.is_some();
        let imported = change.pointer("/change/importing").is_some_and(|v| !v.is_null());
        let Some(action) = action(&actions, moved, imported) else { continue };
        let (address, resource_type) = (text("address"), text("type"));
        let is_here = is_stateful(resource_type, address);
        let was_stateful = previous.is_some_and(|p| is_stateful(resource_type, p));
        summary.changes.push(ResourceChange {
            // A moved object is the same object: as stateful as it was at its old address.
            stateful: is_here || was_stateful,
            unprotected_move: was_stateful && !is_here,
            address: address.to_string(),
            resource_type: resource_type.to_string(),
            action,
        });
    }
    if let Some(Value::Object(outputs)) = plan.get("output_changes") {
        summary.output_changes = outputs
            .iter()
            .filter(|(_, change)| {
                change.pointer("/actions").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x != "no-op"))
            })
            .map(|(name, _)| name.clone())
            .collect();
    }
    summary.changes.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(summary)
}

/// The action of a JSON plan's `actions` list. A combination this Stamp does not know is the
/// most dangerous action, so protection never lets it through unseen.
fn action(actions: &[&str], moved: bool, imported: bool) -> Option<Action> {
    Some(match actions {
        ["no-op"] | [] if imported => Action::Import,
        ["no-op"] | [] if moved => Action::Move,
        ["no-op"] | [] => return None,
        ["create"] => Action::Create,
        ["read"] => Action::Read,
        ["update"] => Action::Update,
        ["delete"] => Action::Delete,
        ["forget"] => Action::Forget,
        _ => Action::Replace,
    })
}

/// The JSON plan with every value Terraform marks sensitive replaced by `<redacted>`, and
/// every input variable's value too (secrets given as `TF_VAR_...` arrive there, sensitive or
/// not).
pub fn redact(plan: &mut Value) {
    if let Some(Value::Object(variables)) = plan.get_mut("variables") {
        for variable in variables.values_mut() {
            if let Some(value) = variable.get_mut("value") {
                *value = Value::String(REDACTED.into());
            }
        }
    }
    for values in ["/planned_values", "/prior_state/values"] {
        if let Some(module) = plan.pointer_mut(values) {
            redact_module(module);
        }
    }
    for list in ["resource_changes", "resource_drift"] {
        for change in plan.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(change) = change.get_mut("change") {
                redact_change(change);
            }
        }
    }
    for deferred in plan.get_mut("deferred_changes").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(change) = deferred.pointer_mut("/resource_change/change") {
            redact_change(change);
        }
    }
    if let Some(Value::Object(outputs)) = plan.get_mut("output_changes") {
        outputs.values_mut().for_each(redact_change);
    }
    if let Some(module) = plan.pointer_mut("/configuration/root_module") {
        redact_configuration(module);
    }
}

/// The defaults of variables declared `sensitive`, in a module of the configuration and the
/// modules it calls.
fn redact_configuration(module: &mut Value) {
    if let Some(Value::Object(variables)) = module.get_mut("variables") {
        for variable in variables.values_mut() {
            if variable.get("sensitive") == Some(&Value::Bool(true))
                && let Some(default) = variable.get_mut("default")
            {
                *default = Value::String(REDACTED.into());
            }
        }
    }
    if let Some(Value::Object(calls)) = module.get_mut("module_calls") {
        for call in calls.values_mut() {
            if let Some(module) = call.get_mut("module") {
                redact_configuration(module);
            }
        }
    }
}

/// A module of `planned_values` or of the prior state: its outputs, its resources (each with a
/// `sensitive_values` mask), its child modules.
fn redact_module(module: &mut Value) {
    if let Some(Value::Object(outputs)) = module.get_mut("outputs") {
        for output in outputs.values_mut() {
            if output.get("sensitive") == Some(&Value::Bool(true))
                && let Some(value) = output.get_mut("value")
            {
                *value = Value::String(REDACTED.into());
            }
        }
    }
    if let Some(module) = module.get_mut("root_module") {
        redact_module(module);
    }
    for resource in module.get_mut("resources").and_then(Value::as_array_mut).into_iter().flatten() {
        let mask = resource.get("sensitive_values").cloned().unwrap_or(Value::Null);
        if let Some(values) = resource.get_mut("values") {
            apply_mask(values, &mask);
        }
    }
    for child in module.get_mut("child_modules").and_then(Value::as_array_mut).into_iter().flatten() {
        redact_module(child);
    }
}

/// A change (`before`/`after` with their `*_sensitive` masks).
fn redact_change(change: &mut Value) {
    for (value, mask) in [("before", "before_sensitive"), ("after", "after_sensitive")] {
        let mask = change.get(mask).cloned().unwrap_or(Value::Null);
        if let Some(value) = change.get_mut(value) {
            apply_mask(value, &mask);
        }
    }
}

/// Replaces what `mask` marks `true`: the whole value, or the marked parts of a map or list.
fn apply_mask(value: &mut Value, mask: &Value) {
    match (value, mask) {
        (value, Value::Bool(true)) => *value = Value::String(REDACTED.into()),
        (Value::Object(map), Value::Object(marks)) => {
            for (key, mark) in marks {
                if let Some(child) = map.get_mut(key) {
                    apply_mask(child, mark);
                }
            }
        }
        (Value::Array(items), Value::Array(marks)) => {
            for (item, mark) in items.iter_mut().zip(marks) {
                apply_mask(item, mark);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn plan() -> Value {
        json!({
            "format_version": "1.2",
            "terraform_version": "1.15.5",
            "variables": {"db_password": {"value": "hunter22"}, "region": {"value": "eu-west-1"}},
            "planned_values": {
                "outputs": {"dsn": {"sensitive": true, "value": "postgres://u:hunter22@db"}},
                "root_module": {"resources": [{
                    "address": "aws_db_instance.main", "type": "aws_db_instance",
                    "values": {"password": "hunter22", "name": "orders", "tags": {"a": "b"}},
                    "sensitive_values": {"password": true, "tags": {}}
                }], "child_modules": [{"resources": [{
                    "values": {"token": ["t1", "hunter22"]}, "sensitive_values": {"token": [false, true]}
                }]}]}
            },
            "resource_changes": [
                {"address": "aws_db_instance.main", "type": "aws_db_instance",
                 "change": {"actions": ["delete", "create"], "before": {"password": "old-secret"}, "after": {"password": "hunter22"},
                            "before_sensitive": {"password": true}, "after_sensitive": {"password": true}}},
                {"address": "terraform_data.x", "type": "terraform_data", "change": {"actions": ["no-op"]}},
                {"address": "terraform_data.moved", "type": "terraform_data", "previous_address": "terraform_data.old",
                 "change": {"actions": ["no-op"]}},
                {"address": "terraform_data.new", "type": "terraform_data", "change": {"actions": ["create"], "after": {}}}
            ],
            "output_changes": {
                "dsn": {"actions": ["update"], "before": "a", "after": "postgres://u:hunter22@db", "after_sensitive": true},
                "same": {"actions": ["no-op"]}
            },
            "deferred_changes": [{"reason": "x", "resource_change": {"address": "a.b", "change": {
                "actions": ["create"], "after": {"key": "hunter22"}, "after_sensitive": {"key": true}}}}],
            "configuration": {"root_module": {
                "variables": {"token": {"default": "hunter22", "sensitive": true}, "open": {"default": "o"}},
                "module_calls": {"m": {"module": {"variables": {"inner": {"default": "hunter22", "sensitive": true}}}}}
            }}
        })
    }

    #[test]
    fn summary_comes_from_the_plan_itself() {
        let text = plan().to_string();
        let summary = summary(&text, &|t, _| t == "aws_db_instance").unwrap();
        let actions: Vec<(&str, Action, bool)> =
            summary.changes.iter().map(|c| (c.address.as_str(), c.action, c.stateful)).collect();
        assert_eq!(
            actions,
            [
                ("aws_db_instance.main", Action::Replace, true),
                ("terraform_data.moved", Action::Move, false),
                ("terraform_data.new", Action::Create, false),
            ]
        );
        assert_eq!(summary.output_changes, ["dsn"]);
        assert_eq!(summary.terraform_version.as_deref(), Some("1.15.5"));
        assert!(super::summary("{\"changes\": []}", &|_, _| false).is_err());
        // Stateful at its old address: the object moved is as stateful as it was.
        let moved = super::summary(&text, &|_, address| address == "terraform_data.old").unwrap();
        let stateful: Vec<&str> = moved.changes.iter().filter(|c| c.stateful).map(|c| c.address.as_str()).collect();
        assert_eq!(stateful, ["terraform_data.moved"]);
    }

    #[test]
    fn sensitive_values_and_variables_are_redacted() {
        let mut plan = plan();
        redact(&mut plan);
        let text = plan.to_string();
        assert!(!text.contains("hunter22") && !text.contains("old-secret"), "{text}");
        assert_eq!(plan["planned_values"]["root_module"]["resources"][0]["values"]["name"], "orders");
        assert_eq!(
            plan["planned_values"]["root_module"]["child_modules"][0]["resources"][0]["values"]["token"][0],
            "t1"
        );
        assert_eq!(plan["variables"]["region"]["value"], REDACTED);
    }
}

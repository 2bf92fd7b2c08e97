//! Layering of configuration: org-wide defaults <- archetype defaults <- the account file.

use serde_json::Value;

/// Merges `over` onto `base`: maps merge key by key, anything else in `over` replaces `base`.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

/// The effective config of an account: each layer merged over the previous one.
pub fn effective<'a>(layers: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut out = Value::Object(serde_json::Map::new());
    for layer in layers {
        if !layer.is_null() {
            merge(&mut out, layer);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_and_lists_replace() {
        let org = json!({"tags": {"ManagedBy": "stamp"}, "network": {"azs": 2}, "list": [1, 2]});
        let archetype = json!({"network": {"azs": 3, "nat": "single"}});
        let account = json!({"tags": {"Team": "a"}, "list": [3], "network": {"cidr": "10.0.0.0/16"}});
        let got = effective([&org, &archetype, &account]);
        assert_eq!(
            got,
            json!({
                "tags": {"ManagedBy": "stamp", "Team": "a"},
                "network": {"azs": 3, "nat": "single", "cidr": "10.0.0.0/16"},
                "list": [3]
            })
        );
    }

    #[test]
    fn null_layers_are_skipped_but_null_values_replace() {
        let got = effective([&Value::Null, &json!({"a": 1}), &json!({"a": null})]);
        assert_eq!(got, json!({"a": null}));
    }
}

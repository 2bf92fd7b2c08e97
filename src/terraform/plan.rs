//! What a plan will do, read from Terraform's machine-readable UI stream (`plan -json`): one
//! Terraform run gives both the plan file and its summary, so Stamp adds no extra
//! `terraform show` run to every plan.

use serde::{Deserialize, Serialize};

/// What Terraform will do to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    Read,
    Move,
    Import,
    Forget,
}

impl Action {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "create" => Self::Create,
            "update" => Self::Update,
            "replace" => Self::Replace,
            "delete" => Self::Delete,
            "read" => Self::Read,
            "move" => Self::Move,
            "import" => Self::Import,
            "remove" | "forget" => Self::Forget,
            "noop" => return None,
            // An action this Stamp does not know yet: treat it as the most dangerous one, so
            // protection never lets it through unseen.
            _ => Self::Replace,
        })
    }

    /// Whether the action destroys the resource's current object (and so its data).
    pub fn destroys(self) -> bool {
        matches!(self, Self::Delete | Self::Replace)
    }

    /// The verb for reports: `create`, `update in place`, `replace`, ...
    pub fn verb(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update in place",
            Self::Replace => "replace",
            Self::Delete => "destroy",
            Self::Read => "read",
            Self::Move => "move",
            Self::Import => "import",
            Self::Forget => "forget",
        }
    }

    /// The symbol Terraform uses in plans.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Create => "+",
            Self::Update => "~",
            Self::Replace => "-/+",
            Self::Delete => "-",
            Self::Read => "<=",
            Self::Move | Self::Import | Self::Forget => ">",
        }
    }
}

/// A planned change to one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// `aws_db_instance.this["orders"]`, `module.x.aws_s3_bucket.raw`.
    pub address: String,
    pub resource_type: String,
    pub action: Action,
    /// Holds data that a destroy would lose (database, bucket, hosted zone...).
    pub stateful: bool,
    /// Moved here from an address that holds data, to one Stamp does not know holds data:
    /// once moved, nothing would protect it (a later plan sees only its new address).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unprotected_move: bool,
}

/// The summary of one plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// In the order Terraform reported them.
    pub changes: Vec<ResourceChange>,
    /// Names of root outputs that change.
    pub output_changes: Vec<String>,
    /// Terraform's own version line (`1.15.5`).
    pub terraform_version: Option<String>,
}

impl PlanSummary {
    /// Parses the UI stream of `terraform plan -json`. `is_stateful` decides, by resource type
    /// and address, which resources hold data.
    pub fn from_ui_stream(stream: &str, is_stateful: &dyn Fn(&str, &str) -> bool) -> Self {
        let mut summary = Self::default();
        for line in stream.lines() {
            let Ok(message) = serde_json::from_str::<UiMessage>(line) else { continue };
            match message.kind.as_str() {
                "version" => summary.terraform_version = message.terraform,
                "planned_change" => {
                    let Some(change) = message.change else { continue };
                    let Some(action) = Action::parse(&change.action) else { continue };
                    let resource = change.resource;
                    // A moved object is the same object: what it held at its old address
                    // (`moved` then a replace destroys that database), it holds here.
                    let was_stateful = change
                        .previous_resource
                        .is_some_and(|previous| is_stateful(&previous.resource_type, &previous.addr));
                    let is_here = is_stateful(&resource.resource_type, &resource.addr);
                    summary.changes.push(ResourceChange {
                        stateful: was_stateful || is_here,
                        unprotected_move: was_stateful && !is_here,
                        address: resource.addr,
                        resource_type: resource.resource_type,
                        action,
                    });
                }
                "outputs" => {
                    if let Some(outputs) = message.outputs {
                        summary.output_changes = outputs
                            .into_iter()
                            .filter(|(_, o)| o.action.as_deref().is_some_and(|a| a != "noop"))
                            .map(|(name, _)| name)
                            .collect();
                    }
                }
                _ => {}
            }
        }
        // Terraform reports changes in the order its graph walk finds them, which varies.
        summary.changes.sort_by(|a, b| a.address.cmp(&b.address));
        summary
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::Read) || !self.output_changes.is_empty()
    }

    /// How many resources each action touches.
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    /// Changes that would destroy a stateful resource's data.
    pub fn stateful_destroys(&self) -> impl Iterator<Item = &ResourceChange> {
        self.changes.iter().filter(|c| c.stateful && c.action.destroys())
    }

    /// Why this plan (made after part of `approved` was applied) does more than `approved`
    /// allows, if it does: every change must be to an approved address, with the approved
    /// action or a part of it (what is left of a replace: its create or its destroy). A destroy
    /// that was not approved is never allowed.
    pub fn beyond(&self, approved: &PlanSummary) -> Option<String> {
        let mut beyond = Vec::new();
        for change in self.changes.iter().filter(|c| c.action != Action::Read) {
            let allowed = approved.changes.iter().find(|a| a.address == change.address).is_some_and(|a| {
                a.action == change.action
                    || (a.action == Action::Replace && matches!(change.action, Action::Create | Action::Delete))
            });
            if !allowed {
                beyond.push(format!("`{}` ({})", change.address, change.action.verb()));
            }
        }
        (!beyond.is_empty()).then(|| beyond.join(", "))
    }
}

/// An error or warning Terraform reported in its UI stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UiDiagnostic {
    pub severity: String,
    pub summary: String,
    pub detail: String,
}

/// Every diagnostic (errors first) in a UI stream.
pub fn diagnostics(stream: &str) -> Vec<UiDiagnostic> {
    let mut out: Vec<UiDiagnostic> = stream
        .lines()
        .filter_map(|line| serde_json::from_str::<UiMessage>(line).ok())
        .filter_map(|m| m.diagnostic)
        .map(|d| UiDiagnostic { severity: d.severity, summary: d.summary, detail: d.detail.unwrap_or_default() })
        .collect();
    out.sort_by_key(|d| d.severity != "error");
    out
}

#[derive(Deserialize)]
struct UiMessage {
    #[serde(rename = "type", default)]
    kind: String,
    terraform: Option<String>,
    change: Option<UiChange>,
    outputs: Option<std::collections::BTreeMap<String, UiOutput>>,
    diagnostic: Option<UiDiagnosticMessage>,
}

#[derive(Deserialize)]
struct UiChange {
    resource: UiResource,
    /// Where the object was before a `moved` block.
    previous_resource: Option<UiResource>,
    action: String,
}

#[derive(Deserialize)]
struct UiResource {
    addr: String,
    resource_type: String,
}

#[derive(Deserialize)]
struct UiOutput {
    action: Option<String>,
}

#[derive(Deserialize)]
struct UiDiagnosticMessage {
    severity: String,
    summary: String,
    detail: Option<String>,
}

pub use crate::config::archetype::STATEFUL_TYPES;

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = r#"{"@level":"info","terraform":"1.15.5","type":"version","ui":"1.3"}
{"@level":"info","change":{"resource":{"addr":"aws_db_instance.this[\"orders\"]","resource_type":"aws_db_instance"},"action":"replace"},"type":"planned_change"}
{"@level":"info","change":{"resource":{"addr":"aws_vpc.main","resource_type":"aws_vpc"},"action":"update"},"type":"planned_change"}
{"@level":"info","change":{"resource":{"addr":"data.aws_caller_identity.me","resource_type":"aws_caller_identity"},"action":"read"},"type":"planned_change"}
{"@level":"info","outputs":{"stamp":{"sensitive":false,"action":"update"},"same":{"sensitive":false,"action":"noop"}},"type":"outputs"}
{"@level":"error","@message":"Error: boom","diagnostic":{"severity":"error","summary":"boom","detail":"it broke"},"type":"diagnostic"}
not json at all
"#;

    /// An object moved from a stateful address to another is still the stateful object: its
    /// replace destroys the data there.
    #[test]
    fn a_moved_object_is_as_stateful_as_it_was() {
        let stream = r#"{"change":{"resource":{"addr":"terraform_data.db","resource_type":"terraform_data"},"previous_resource":{"addr":"terraform_data.database","resource_type":"terraform_data"},"action":"replace"},"type":"planned_change"}"#;
        let summary = PlanSummary::from_ui_stream(stream, &|_, address| address == "terraform_data.database");
        assert_eq!(summary.stateful_destroys().map(|c| c.address.as_str()).collect::<Vec<_>>(), ["terraform_data.db"]);
        assert!(summary.changes[0].unprotected_move, "it would lose its protection");
    }

    #[test]
    fn reads_changes_outputs_and_version() {
        let summary = PlanSummary::from_ui_stream(STREAM, &|t, _| STATEFUL_TYPES.contains(&t));
        assert_eq!(summary.terraform_version.as_deref(), Some("1.15.5"));
        assert_eq!(summary.changes.len(), 3);
        assert_eq!(summary.changes[0].action, Action::Replace);
        assert!(summary.changes[0].stateful);
        assert_eq!(summary.output_changes, vec!["stamp"]);
        assert_eq!(summary.stateful_destroys().count(), 1);
        assert!(summary.has_changes());
        assert_eq!(diagnostics(STREAM)[0].summary, "boom");
    }

    #[test]
    fn a_new_plan_may_only_finish_what_was_approved() {
        let change = |address: &str, action| ResourceChange {
            address: address.into(),
            resource_type: "t".into(),
            action,
            stateful: false,
            unprotected_move: false,
        };
        let approved = PlanSummary {
            changes: vec![change("a", Action::Create), change("b", Action::Replace), change("c", Action::Update)],
            ..PlanSummary::default()
        };
        let rest = PlanSummary {
            changes: vec![change("b", Action::Create), change("d", Action::Read)],
            ..PlanSummary::default()
        };
        assert_eq!(rest.beyond(&approved), None);
        let more = PlanSummary {
            changes: vec![change("a", Action::Replace), change("c", Action::Delete), change("e", Action::Create)],
            ..PlanSummary::default()
        };
        assert_eq!(more.beyond(&approved).unwrap(), "`a` (replace), `c` (destroy), `e` (create)");
    }

    #[test]
    fn reads_alone_is_no_change() {
        let stream = r#"{"change":{"resource":{"addr":"data.x.y","resource_type":"x"},"action":"read"},"type":"planned_change"}"#;
        assert!(!PlanSummary::from_ui_stream(stream, &|_, _| false).has_changes());
    }
}

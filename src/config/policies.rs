//! Policy checks an archetype (or an account) declares, and the waivers an account gives for
//! their findings. Running them and reading their findings is `pipeline::policy`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::hooks::{Run, duration};

/// One entry of `policies:` in `archetype.yaml` (or in an account file, added to the
/// archetype's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    /// What the command checks.
    pub on: PolicyInput,
    pub run: Run,
    /// How its findings are printed on stdout.
    pub format: FindingFormat,
    /// Default 5m.
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
}

/// What a policy command is run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyInput {
    /// The rendered root module: the command runs in it.
    Tree,
    /// The plan as JSON (`terraform show -json`), in the file `STAMP_PLAN_JSON` names.
    Plan,
}

impl std::fmt::Display for PolicyInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tree => "tree",
            Self::Plan => "plan",
        })
    }
}

/// The JSON shapes Stamp reads findings from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingFormat {
    /// checkov's `-o json`: one report, or a list of them when several frameworks ran.
    Checkov,
    /// SARIF 2.1.0 (checkov `-o sarif`, conftest `-o sarif`, tfsec, trivy, ...).
    Sarif,
}

/// One entry of `policy_waivers:` in an account file: findings with this id (on this resource,
/// from this policy, when given) do not block `apply`, for the reason written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Waiver {
    /// The finding's id (checkov's `check_id`, SARIF's `ruleId`).
    pub id: String,
    /// Only findings on this resource address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Only findings of the policy of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Why the finding is acceptable here: shown in every report.
    #[serde(default)]
    pub reason: String,
}

impl Waiver {
    /// Whether this waiver covers a finding `id` on `resource` from `policy`.
    pub fn covers(&self, policy: &str, id: &str, resource: Option<&str>) -> bool {
        self.id == id
            && self.resource.as_deref().is_none_or(|r| Some(r) == resource)
            && self.policy.as_deref().is_none_or(|p| p == policy)
    }
}

/// The account-file keys of policy checks (not part of the config the schema sees).
pub const POLICIES_KEY: &str = "policies";
pub const WAIVERS_KEY: &str = "policy_waivers";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiver_covers_its_id_and_narrows_by_resource_and_policy() {
        let waiver = Waiver { id: "CKV_1".into(), resource: None, policy: None, reason: "r".into() };
        assert!(waiver.covers("checkov", "CKV_1", Some("a.b")));
        assert!(waiver.covers("checkov", "CKV_1", None));
        assert!(!waiver.covers("checkov", "CKV_2", Some("a.b")));
        let narrow = Waiver { resource: Some("a.b".into()), policy: Some("checkov".into()), ..waiver };
        assert!(narrow.covers("checkov", "CKV_1", Some("a.b")));
        assert!(!narrow.covers("checkov", "CKV_1", Some("a.c")));
        assert!(!narrow.covers("checkov", "CKV_1", None));
        assert!(!narrow.covers("opa", "CKV_1", Some("a.b")));
    }
}

//! Every error message a user can meet for a bad account config, pinned: one test per
//! `fixtures/invalid/` case, each checked in the context of the project's accounts.

mod common;

use common::Project;

fn check(case: &str) -> String {
    let project = Project::example();
    let out = project.stamp(["check", &format!("fixtures/invalid/{case}.yaml")]).run().failure(1);
    out.snapshot()
}

macro_rules! cases {
    ($($name:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $name() {
                snapshot!(stringify!($name), check($file));
            }
        )*

        /// A new file in `fixtures/invalid/` needs a test here.
        #[test]
        fn every_invalid_fixture_has_a_test() {
            let covered = [$($file),*];
            let dir = common::repo().join("fixtures/invalid");
            for entry in fs_err::read_dir(dir).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().trim_end_matches(".yaml").to_string();
                assert!(covered.contains(&name.as_str()), "fixtures/invalid/{name}.yaml has no test");
            }
        }
    };
}

cases! {
    malformed_yaml => "malformed-yaml",
    unknown_archetype => "unknown-archetype",
    missing_required_key => "missing-required-key",
    misspelt_key => "misspelt-key",
    wrong_type => "wrong-type",
    unquoted_account_id => "unquoted-account-id",
    bad_cidr => "bad-cidr",
    bad_enum => "bad-enum",
    overlapping_cidr => "overlapping-cidr",
    duplicate_account_id => "duplicate-account-id",
    duplicate_zone => "duplicate-zone",
    several_errors => "several-errors",
    waiver_without_reason => "waiver-without-reason",
    exact_minor_engine_version => "exact-minor-engine-version",
}

#[test]
fn json_diagnostics_name_file_line_and_column() {
    let project = Project::example();
    let out = project.stamp(["check", "--format", "json", "fixtures/invalid/several-errors.yaml"]).run().failure(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["errors"], 5);
    let first = &report["diagnostics"][1];
    assert_eq!(first["file"], "fixtures/invalid/several-errors.yaml");
    assert_eq!(first["line"], 2);
    assert_eq!(first["column"], 13);
    assert_eq!(first["code"], "schema.format");
    snapshot!(out.stdout);
}

#[test]
fn broken_project_file() {
    let project = Project::example();
    project.write("stamp.yaml", "archetypes: archetypes\nacounts: fixtures/accounts\n");
    snapshot!(project.stamp(["check"]).run().failure(1).snapshot());
}

#[test]
fn account_file_in_the_accounts_folder_with_errors_fails_check_of_all() {
    let project = Project::example();
    project.write(
        "fixtures/accounts/broken.yaml",
        "archetype: local-platform\nenvironment: dev\nnetwork:\n  cidr: 10.41.0.0/16\n",
    );
    snapshot!(project.stamp(["check"]).run().failure(1).snapshot());
}

#[test]
fn unknown_account_name() {
    let project = Project::example();
    snapshot!(project.stamp(["check", "prodution"]).run().failure(1).snapshot());
}

#[test]
fn undefined_template_variable() {
    let project = Project::example();
    project.write("blueprints/local-platform/extra.tf.j2", "locals {\n  port = {{ config.service.prot }}\n}\n");
    snapshot!(project.stamp(["check", "local-staging"]).run().failure(1).snapshot());
}

#[test]
fn rendered_file_that_is_not_hcl() {
    let project = Project::example();
    project.write(
        "blueprints/local-platform/extra.tf.j2",
        "locals {\n  replicas = {{ config.service.replicas }}\n  broken = (\n}\n",
    );
    snapshot!(project.stamp(["check", "local-staging"]).run().failure(1).snapshot());
}

#[test]
fn template_syntax_error() {
    let project = Project::example();
    project.write("blueprints/local-platform/extra.tf.j2", "locals {\n  a = {{ config.name \n}\n");
    snapshot!(project.stamp(["check", "local-staging"]).run().failure(1).snapshot());
}

#[test]
fn missing_blueprint() {
    let project = Project::example();
    let path = "archetypes/local-platform/archetype.yaml";
    let text = project.read(path).replace("blueprint: local-platform", "blueprint: local-platfrm");
    project.write(path, &text);
    snapshot!(project.stamp(["check", "local-staging"]).run().failure(1).snapshot());
}

#[test]
fn no_project_found() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::Run::new(dir.path()).args(["check"]).run().failure(2);
    assert!(out.stderr.contains("no `stamp.yaml` found"), "{}", out.stderr);
}

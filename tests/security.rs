//! Config values can never become HCL syntax, and templates cannot read outside their
//! blueprint.

mod common;

use common::Project;

/// A minimal project whose schema accepts any strings, so hostile values reach the templates.
fn permissive_project(template: &str, account: &str) -> Project {
    let project = Project { dir: tempfile::tempdir().unwrap() };
    project
        .write("stamp.yaml", "accounts: accounts\n")
        .write("archetypes/open/archetype.yaml", "blueprint: open\nprovider: none\n")
        .write(
            "archetypes/open/schema.json",
            r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}"#,
        )
        .write("blueprints/open/main.tf.j2", template)
        .write("accounts/evil.yaml", account);
    project
}

const HOSTILE: &str =
    "x\" }\nresource \"terraform_data\" \"pwn\" {\n  input = \"${file(\"/etc/passwd\")}\" %{ if true }\\";

fn account_with(value: &str) -> String {
    let value = serde_json::to_string(value).unwrap();
    format!(
        "archetype: open\nenvironment: test\nname_value: {value}\nlist: [{value}, \"b\"]\nmap:\n  {value}: {value}\ntags:\n  Evil: {value}\n"
    )
}

fn parse(text: &str) -> serde_json::Value {
    let body: hcl::Body = hcl::from_str(text).unwrap_or_else(|e| panic!("not HCL: {e}\n{text}"));
    hcl::from_body(body).unwrap()
}

#[test]
fn hostile_values_stay_values() {
    let template = "locals {\n  quoted  = \"{{ config.name_value }}-suffix\"\n  literal = {{ config.name_value | hcl }}\n  list    = {{ config.list }}\n  map     = {{ config.map }}\n}\n";
    let project = permissive_project(template, &account_with(HOSTILE));
    project.stamp(["render", "evil", "--out", "out", "--version", "1.0.0"]).run().success();
    let main = parse(&project.read("out/main.tf"));
    let locals = &main["locals"];
    assert_eq!(locals["quoted"], format!("{HOSTILE}-suffix"));
    assert_eq!(locals["literal"], HOSTILE);
    assert_eq!(locals["list"][0], HOSTILE);
    assert_eq!(locals["map"][HOSTILE], HOSTILE);
    assert!(main.get("resource").is_none(), "a value created a resource: {main}");
    let metadata = parse(&project.read("out/stamp_metadata.tf"));
    assert_eq!(metadata["locals"]["stamp_tags"]["Evil"], HOSTILE);
}

#[test]
fn string_printed_outside_quotes_is_refused() {
    let template = "locals {\n  a = 1\n  b = {{ config.name_value }}\n}\n";
    let project = permissive_project(template, &account_with("abspath(path.root)"));
    let out = project.stamp(["check"]).run().failure(1);
    snapshot!(out.snapshot());
}

#[test]
fn list_printed_inside_a_string_is_refused() {
    let template = "locals {\n  a = \"{{ config.list }}\"\n}\n";
    let project = permissive_project(template, &account_with("x"));
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("printed inside a string"), "{}", out.stderr);
}

#[test]
fn string_printed_inside_interpolation_is_refused() {
    let template = "locals {\n  a = \"${ {{ config.name_value }} }\"\n}\n";
    let project = permissive_project(template, &account_with("var.secret"));
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("outside a quoted string"), "{}", out.stderr);
}

#[test]
fn templates_cannot_include_files_outside_their_blueprint() {
    for include in ["../../stamp.yaml", "/etc/passwd", "../open/main.tf.j2"] {
        let template = format!("locals {{\n  a = 1\n}}\n{{% include \"{include}\" %}}\n");
        let project = permissive_project(&template, &account_with("x"));
        let out = project.stamp(["check"]).run().failure(1);
        assert!(out.stderr.contains("templates can only include files of their own blueprint"), "{}", out.stderr);
        assert!(!out.stderr.contains("accounts:"), "content of an outside file leaked:\n{}", out.stderr);
    }
}

#[test]
fn templates_can_include_their_own_files() {
    let project = permissive_project(
        "{% import \"macros.j2\" as m %}locals {\n  a = {{ m.pair(\"k\", config.name_value) }}\n}\n",
        &account_with("v\"1"),
    );
    project.write("blueprints/open/macros.j2", "{% macro pair(k, v) %}{ \"{{ k }}\" = \"{{ v }}\" }{% endmacro %}");
    project.stamp(["render", "evil", "--out", "out"]).run().success();
    assert_eq!(parse(&project.read("out/main.tf"))["locals"]["a"]["k"], "v\"1");
    assert!(!project.path().join("out/macros").exists());
}

#[cfg(unix)]
#[test]
fn symlinks_in_a_blueprint_are_refused() {
    let project = permissive_project("locals {\n  a = 1\n}\n", &account_with("x"));
    std::os::unix::fs::symlink("/etc/passwd", project.path().join("blueprints/open/passwd.tf")).unwrap();
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("is a symbolic link"), "{}", out.stderr);
}

#[test]
fn blueprints_cannot_replace_generated_files() {
    let project = permissive_project("locals {\n  a = 1\n}\n", &account_with("x"));
    project.write("blueprints/open/stamp_backend.tf", "terraform {}\n");
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("uses a name Stamp reserves"), "{}", out.stderr);
}

#[test]
fn null_values_are_not_printed_silently() {
    let project =
        permissive_project("locals {\n  a = \"{{ config.nothing }}\"\n}\n", "archetype: open\nnothing: null\n");
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("cannot print a null value"), "{}", out.stderr);
}

#[test]
fn filters_that_print_text_as_it_is_are_not_available() {
    for filter in ["safe", "tojson", "escape"] {
        let template = format!("locals {{\n  a = \"{{{{ config.name_value | {filter} }}}}\"\n}}\n");
        let project = permissive_project(&template, &account_with(HOSTILE));
        let out = project.stamp(["check"]).run().failure(1);
        assert!(
            out.stderr.contains(&format!("filter {filter} is unknown")),
            "`{filter}` is available:\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("Stamp removes the filters that print text unescaped"), "{}", out.stderr);
    }
}

fn secret_project(template: &str) -> Project {
    let project = permissive_project(template, "archetype: open\nname_value: x\ndb:\n  password: hunter2-secret\n");
    project.write(
        "archetypes/open/schema.json",
        r##"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "$defs": {"secret": {"type": "string", "writeOnly": true}},
            "properties": {"db": {"type": "object", "properties": {"password": {"$ref": "#/$defs/secret"}}}}}"##,
    );
    project
}

#[test]
fn sensitive_values_are_never_rendered() {
    let project = secret_project("locals {\n  password = \"{{ config.db.password }}\"\n}\n");
    let out = project.stamp(["render", "evil", "--out", "out"]).run().failure(1);
    assert!(out.stderr.contains("a sensitive config value is written into rendered `main.tf`"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert!(!project.path().join("out").exists());
}

#[test]
fn sensitive_values_behind_refs_are_redacted_in_artifacts_and_diffs() {
    let project = secret_project("locals {\n  name = \"{{ config.name_value }}\"\n}\n");
    project.stamp(["build", "evil", "--version", "1.0.0"]).run().success();
    let config = project.artifact_entry("dist/evil-1.0.0.tar.gz", "config.json");
    assert!(config.contains("\"password\": \"<redacted>\""), "{config}");
    assert!(!config.contains("hunter2"), "{config}");
    project.write("accounts/other.yaml", "archetype: open\nname_value: x\ndb:\n  password: other-secret-9\n");
    let diff = project.stamp(["diff", "evil", "other", "--version", "1.0.0"]).run();
    assert!(!diff.stdout.contains("hunter2") && !diff.stdout.contains("other-secret"), "{}", diff.stdout);
}

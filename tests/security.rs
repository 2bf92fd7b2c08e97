//! Config values can never become HCL syntax, and templates cannot read outside their
//! blueprint.

mod common;

use common::{Project, console, terraform_command};

/// A minimal project whose schema accepts any strings, so hostile values reach the templates.
/// `stamp check` of [`permissive_project`], which must fail.
fn check_refused(template: &str, account: &str) -> common::Output {
    permissive_project(template, account).stamp(["check"]).run().failure(1)
}

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
    let out = check_refused(template, &account_with("abspath(path.root)"));
    snapshot!(out.snapshot());
}

#[test]
fn list_printed_inside_a_string_is_refused() {
    let template = "locals {\n  a = \"{{ config.list }}\"\n}\n";
    let out = check_refused(template, &account_with("x"));
    assert!(out.stderr.contains("printed inside a string"), "{}", out.stderr);
}

#[test]
fn string_printed_inside_interpolation_is_refused() {
    let template = "locals {\n  a = \"${ {{ config.name_value }} }\"\n}\n";
    let out = check_refused(template, &account_with("var.secret"));
    assert!(out.stderr.contains("outside a quoted string"), "{}", out.stderr);
}

#[test]
fn templates_cannot_include_files_outside_their_blueprint() {
    for include in ["../../stamp.yaml", "/etc/passwd", "../open/main.tf.j2"] {
        let template = format!("locals {{\n  a = 1\n}}\n{{% include \"{include}\" %}}\n");
        let out = check_refused(&template, &account_with("x"));
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
fn an_archetype_cannot_take_its_blueprint_from_outside_the_blueprints_folder() {
    let outside = tempfile::tempdir().unwrap();
    fs_err::write(outside.path().join("leak.tf"), "locals {\n  leaked = \"outside-the-project\"\n}\n").unwrap();
    let project = permissive_project("locals {\n  a = 1\n}\n", "archetype: open\n");
    let relative = format!("../../../../../../../../..{}", outside.path().display());
    for blueprint in [outside.path().display().to_string(), relative, "..".into(), ".".into(), "open/../open".into()] {
        project.write("archetypes/open/archetype.yaml", &format!("blueprint: {blueprint:?}\nprovider: none\n"));
        let out = project.stamp(["check"]).run().failure(1);
        assert!(
            out.stderr.contains("must name a folder") && out.stderr.contains("archetype.yaml:1:12"),
            "{blueprint}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("`archetypes/open/archetype.yaml` did not load"), "{blueprint}: {}", out.stderr);
        project.stamp(["render", "--all", "--out", "out"]).run().failure(1);
        assert!(!project.path().join("out").exists(), "{blueprint}");
    }
    // Nor through a link in the blueprints folder.
    #[cfg(unix)]
    {
        project.write("archetypes/open/archetype.yaml", "blueprint: linked\nprovider: none\n");
        std::os::unix::fs::symlink(outside.path(), project.path().join("blueprints/linked")).unwrap();
        let out = project.stamp(["render", "--all", "--out", "out"]).run().failure(1);
        assert!(out.stderr.contains("blueprint"), "{}", out.stderr);
        assert!(!project.path().join("out").exists());
        // Or a link on the way to a blueprint in a folder of blueprints.
        fs_err::create_dir_all(outside.path().join("inner")).unwrap();
        fs_err::write(outside.path().join("inner/leak.tf"), "locals {\n  b = 1\n}\n").unwrap();
        project.write("archetypes/open/archetype.yaml", "blueprint: linked/inner\nprovider: none\n");
        let out = project.stamp(["render", "--all", "--out", "out"]).run().failure(1);
        assert!(out.stderr.contains("leads out of `blueprints` through a link"), "{}", out.stderr);
        assert!(!project.path().join("out").exists());
    }
    // A blueprint in a folder of blueprints is the blueprints folder's own.
    project.write("blueprints/aws/open/main.tf.j2", "locals {\n  nested = 1\n}\n");
    project.write("archetypes/open/archetype.yaml", "blueprint: aws/open\nprovider: none\n");
    project.stamp(["render", "--all", "--out", "out"]).run().success();
    assert!(project.read("out/evil/main.tf").contains("nested = 1"));
    // But not one inside another: `aws` would render `aws/open`'s files as its own.
    project
        .write("archetypes/outer/archetype.yaml", "blueprint: aws\nprovider: none\n")
        .write("archetypes/outer/schema.json", r#"{"type": "object"}"#)
        .write("blueprints/aws/main.tf.j2", "locals {\n  outer = 1\n}\n");
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("blueprint `aws` holds blueprint `aws/open`"), "{}", out.stderr);
}

#[test]
fn symlinks_in_a_blueprint_are_refused() {
    let project = permissive_project("locals {\n  a = 1\n}\n", &account_with("x"));
    std::os::unix::fs::symlink("/etc/passwd", project.path().join("blueprints/open/passwd.tf")).unwrap();
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("is a symbolic link"), "{}", out.stderr);
}

/// A blueprint is held in memory whole and copied into every tree: a file beyond Stamp's
/// limit (here a sparse gigabyte) is named and never read.
#[test]
fn a_blueprint_file_beyond_the_limit_is_named_unread() {
    let project = permissive_project("locals {\n  a = 1\n}\n", &account_with("x"));
    let file = fs_err::File::create(project.path().join("blueprints/open/lambda.zip")).unwrap();
    file.set_len(1 << 30).unwrap();
    let out = project.stamp(["check"]).run().failure(1);
    assert!(
        out.stderr.contains("blueprints/open/lambda.zip`: a blueprint file is at most 64 MiB, this one is larger"),
        "{}",
        out.stderr
    );
    // At a revision too, whose blob is written out no further than the limit.
    file.set_len(65 << 20).unwrap();
    project.commit_all("a large file");
    let out = project.stamp(["diff", "evil@HEAD", "evil"]).run();
    assert!(out.stderr.contains("lambda.zip`: a blueprint file is at most 64 MiB"), "{}", out.snapshot());
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
        let out = check_refused(&template, &account_with(HOSTILE));
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
    // Printed, filtered, joined, or inside a map printed whole: templates never get the value.
    for use_ in [
        "\"{{ config.db.password }}\"",
        "\"{{ config.db.password | upper }}\"",
        "\"{{ config.db.password ~ \"x\" }}\"",
        "\"{{ [config.db.password, \"x\"] | join(\"-\") }}\"",
        "{{ config.db | hcl }}",
        "{{ config.db.password | hcl }}",
        "\"{{ config.db.password | string | reverse }}\"",
        "\"{% set p %}{{ config.db.password | lower }}{% endset %}{{ p }}\"",
    ] {
        let project = secret_project(&format!("locals {{\n  password = {use_}\n}}\n"));
        let out = project.stamp(["render", "evil", "--out", "out"]).run().failure(1);
        assert!(
            out.stderr.contains("is sensitive (`writeOnly` in the schema) and cannot be rendered"),
            "{use_}:\n{}",
            out.stderr
        );
        assert!(!out.stderr.to_lowercase().contains("hunter2"), "{}", out.stderr);
        assert!(!project.path().join("out").exists());
    }
}

/// Every schema shape that makes a value `writeOnly`, as the issue found them leaking.
fn shapes_project(template: &str) -> Project {
    let project = permissive_project(
        template,
        "archetype: open\nname_value: x\nwhole: {a: s1-secret-1}\nsibling: {dsn: s2-secret-2}\nbyname: {secret_x: s3-secret-3}\ntuple: [t, s4-secret-4]\nkind: vault\ntoken: s5-secret-5\n",
    );
    project.write(
        "archetypes/open/schema.json",
        r##"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "$defs": {"conn": {"type": "object", "properties": {"dsn": {"type": "string"}}}},
            "properties": {
                "whole": {"type": "object", "writeOnly": true},
                "sibling": {"$ref": "#/$defs/conn", "writeOnly": true},
                "byname": {"type": "object", "patternProperties": {"^secret_": {"writeOnly": true}}},
                "tuple": {"type": "array", "prefixItems": [{"type": "string"}, {"writeOnly": true}]}
            },
            "if": {"properties": {"kind": {"const": "vault"}}},
            "then": {"properties": {"token": {"writeOnly": true}}}}"##,
    );
    project
}

fn assert_no_secret(what: &str, text: &str) {
    for n in 1..=5 {
        assert!(!text.contains(&format!("secret-{n}")), "a secret in {what}:\n{text}");
    }
}

#[test]
fn every_schema_shape_of_a_sensitive_value_is_redacted() {
    let project = shapes_project("locals {\n  name = \"{{ config.name_value }}\"\n}\n");
    project.stamp(["build", "evil", "--version", "1.0.0"]).run().success();
    for entry in ["config.json", "root/main.tf", "root/stamp_metadata.tf", "manifest.json"] {
        assert_no_secret(entry, &project.artifact_entry("dist/evil-1.0.0.tar.gz", entry));
    }
    let config = project.artifact_entry("dist/evil-1.0.0.tar.gz", "config.json");
    assert_eq!(config.matches("<redacted>").count(), 5, "{config}");
    project.write("accounts/other.yaml", "archetype: open\nname_value: y\nwhole: {a: z}\ntoken: other\n");
    for format in ["text", "markdown", "json"] {
        let diff = project.stamp(["diff", "evil", "other", "--version", "1.0.0", "--format", format]).run();
        assert_no_secret("the diff", &diff.stdout);
    }
    for path in ["whole.a", "sibling.dsn", "byname.secret_x", "tuple[1]", "token"] {
        let template = format!("locals {{\n  x = \"{{{{ config.{path} | upper }}}}\"\n}}\n");
        let project = shapes_project(&template);
        let out = project.stamp(["check"]).run().failure(1);
        assert!(out.stderr.contains("is sensitive"), "{path}:\n{}", out.stderr);
        assert_no_secret("check's errors", &out.stderr);
    }
}

#[test]
fn the_config_digest_does_not_depend_on_secrets() {
    let digest = |password: &str| {
        let project = secret_project("locals {\n  name = \"{{ config.name_value }}\"\n}\n");
        project.write("accounts/evil.yaml", &format!("archetype: open\nname_value: x\ndb:\n  password: {password}\n"));
        project.stamp(["render", "evil", "--out", "out", "--version", "1.0.0"]).run().success();
        let metadata = parse(&project.read("out/stamp_metadata.tf"));
        metadata["locals"]["stamp"]["config_digest"].as_str().unwrap().to_string()
    };
    // A dictionary attack on the digest learns nothing: it is the same whatever the secret.
    assert_eq!(digest("hunter22"), digest("correct-horse-battery"));
}

#[test]
fn invalid_sensitive_values_are_reported_without_their_value() {
    let project = secret_project("locals {\n  name = \"{{ config.name_value }}\"\n}\n");
    project.write(
        "archetypes/open/schema.json",
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "properties": {"db": {"type": "object", "properties": {"password": {"type": "string", "minLength": 20, "pattern": "^[0-9]+$", "writeOnly": true}}}}}"#,
    );
    for format in ["text", "json"] {
        let out = project.stamp(["check", "--format", format]).run().failure(1);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains("db.password"), "{all}");
        assert!(!all.contains("hunter2"), "the secret is shown:\n{all}");
    }
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

#[test]
fn adjacent_values_and_template_text_never_form_an_interpolation() {
    let template = "locals {\n  joined = \"{{ config.tags.A }}{{ config.tags.B }}\"\n  dollar = \"{{ config.tags.D }}{x}\"\n  nested = \"${jsonencode({{ config.map | hcl }})}-{{ config.tags.B }}\"\n}\n";
    let account =
        "archetype: open\ntags:\n  A: \"$\"\n  B: \"{upper(path.cwd)}\"\n  D: \"100%\"\nmap:\n  k: v\n  l: w\n";
    let project = permissive_project(template, account);
    project.stamp(["render", "evil", "--out", "out", "--version", "1.0.0"]).run().success();
    let dir = project.path().join("out");
    let main = project.read("out/main.tf");
    fs_err::remove_file(dir.join("stamp_backend.tf")).unwrap();
    let values = console(&dir, &["local.joined".into(), "local.dollar".into(), "local.nested".into()]);
    assert_eq!(values[0], "${upper(path.cwd)}", "{main}");
    assert_eq!(values[1], "100%{x}", "{main}");
    assert_eq!(values[2], "{\"k\":\"v\",\"l\":\"w\"}-{upper(path.cwd)}", "{main}");
}

#[test]
fn template_text_that_would_join_a_value_into_syntax_is_refused() {
    for (text, value) in [
        ("\"${{ config.x }}\"", "{path.module}"),
        ("\"%{{ config.x }}\"", "{ if true }x%{ endif }"),
        ("\"ACME\\{{ config.x }}\"", "\" + 1 + \""),
        ("\"ACME\\{{ config.x }}\"", "user"),
    ] {
        let template = format!("locals {{\n  a = {text}\n}}\n");
        let value = serde_json::to_string(value).unwrap();
        let out = check_refused(&template, &format!("archetype: open\nx: {value}\n"));
        assert!(out.stderr.contains("runs together with the text beside it"), "{text}:\n{}", out.stderr);
    }
}

#[test]
fn pieces_of_a_literal_are_never_printed_raw() {
    let template = "locals {\n  a = {{ (config.x | hcl | split('\"'))[1] }}\n}\n";
    let project = permissive_project(template, "archetype: open\nx: \"upper(path.cwd)\"\n");
    let out = project.stamp(["check"]).run().failure(1);
    assert!(!out.stderr.contains("no problems"), "{}", out.stderr);
    // Through a macro's output, cut apart by a string filter: refused too.
    let template =
        "{% macro q(v) %}\"{{ v }}\"{% endmacro %}locals {\n  a = {{ (q(config.x) | replace('\\\\\"', '\"')) }}\n}\n";
    let project = permissive_project(template, "archetype: open\nx: 'a\" } resource \"x\" \"y\" { z = \"'\n");
    let out = project.stamp(["check"]).run().failure(1);
    assert!(
        ["after it was printed", "after it was escaped", "printed outside a quoted string"]
            .iter()
            .any(|m| out.stderr.contains(m)),
        "{}",
        out.stderr
    );
    // The markers taken off a block's output by string filters: the rest is plain text again,
    // printed escaped, and refused outside quotes.
    for strip in [
        "trim(\"\\ue000\\ue001\")",
        "replace(\"\\ue000\", \"\") | replace(\"\\ue001\", \"\")",
        "list | reject(\"in\", \"\\ue000\\ue001\") | join",
    ] {
        let template =
            format!("{{% set x %}}{{{{ config.x }}}}{{% endset %}}locals {{\n  y = {{{{ x | {strip} }}}}\n}}\n");
        let out = check_refused(&template, "archetype: open\nx: abspath(path.root)\n");
        assert!(out.stderr.contains("printed outside a quoted string"), "{strip}:\n{}", out.stderr);
    }
}

#[test]
fn template_mistakes_are_errors_never_crashes() {
    // A namespace assigned into itself, printed: nests without end.
    let project = permissive_project(
        "{% set ns = namespace(a=1) %}{% set ns.a = ns %}locals {\n  x = {{ ns | hcl }}\n}\n",
        "archetype: open\n",
    );
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("nests deeper than 64 levels"), "{}", out.stderr);
    // A missing key read in an imported macro of a long template: the error points at it.
    let project =
        permissive_project("{% from 'lib.j2' import m %}locals {\n  x = \"{{ m() }}\"\n}\n", "archetype: open\n");
    project.write(
        "blueprints/open/lib.j2",
        &format!("{}{{% macro m() %}}{{{{ config.missing }}}}{{% endmacro %}}\n", "{# padding #}\n".repeat(40)),
    );
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("undefined value") && out.stderr.contains("lib.j2"), "{}", out.stderr);
    // Counts and widths from a config cannot make a filter allocate without bound.
    for (template, values) in [
        ("locals {\n  x = \"{{ config.t | indent(config.w) }}\"\n}\n", "t: \"a\\nb\"\nw: 9223372036854775807\n"),
        (
            "locals {\n  x = {{ config.l | slice(config.n) | list | length }}\n}\n",
            "l: [1, 2]\nn: 9223372036854775807\n",
        ),
        (
            "locals {\n  x = {{ config.l | batch(config.n) | list | length }}\n}\n",
            "l: [1, 2]\nn: 9223372036854775807\n",
        ),
    ] {
        let out = check_refused(template, &format!("archetype: open\n{values}"));
        assert!(out.stderr.contains("takes a count of at most 10000"), "{template}:\n{}", out.stderr);
    }
    // A loop without end runs out of fuel.
    let project = permissive_project(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}locals {\n  x = 1\n}\n",
        "archetype: open\n",
    );
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("fuel"), "{}", out.stderr);
    // Reserved characters in a template.
    let out = check_refused("locals {\n  x = \"\u{e000}\"\n}\n", "archetype: open\n");
    assert!(out.stderr.contains("holds a character Stamp reserves"), "{}", out.stderr);
}

#[test]
fn numbers_cannot_join_a_name_in_code() {
    let project =
        permissive_project("locals {\n  a = { b = 1 }\n  x = local.a.b{{ config.n }}\n}\n", "archetype: open\nn: -1\n");
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("read differently by the HCL parser"), "{}", out.stderr);
    let project = permissive_project(
        "locals {\n  x = {{ config.n }}\n  y = \"db-{{ config.n }}\"\n}\n",
        "archetype: open\nn: 3\n",
    );
    project.stamp(["check"]).run().success();
}

#[test]
fn heredocs_with_any_marker_keep_values_out() {
    let template = "locals {\n  user_data = <<-END-SCRIPT\n    rm -rf /var/cache/app/*\n  END-SCRIPT\n  tags = { schedule = \"*/5 * * * *\", owner = {{ config.owner }} }\n}\n";
    let project = permissive_project(template, "archetype: open\nowner: abspath(path.root)\n");
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("printed outside a quoted string"), "{}", out.stderr);
    // The body of such a heredoc is left exactly as written.
    let template =
        "locals {\n  user_data = <<-END-SCRIPT\n    export APP_ENV=prod\n      LOG_DIR=/var/log/app\n  END-SCRIPT\n}\n";
    let project = permissive_project(template, "archetype: open\n");
    project.stamp(["render", "evil", "--out", "out"]).run().success();
    assert!(project.read("out/main.tf").contains("    export APP_ENV=prod\n      LOG_DIR=/var/log/app\n"));
}

#[test]
fn file_names_cannot_become_hcl() {
    let project = permissive_project("locals {\n  a = 1\n}\n", "archetype: open\n");
    fs_err::remove_file(project.path().join("accounts/evil.yaml")).unwrap();
    let name = "x\nterraform {\n  required_version = \"< 1.0\"\n}\n#.yaml";
    project.write(&format!("accounts/{name}"), "archetype: open\nname: sneaky\n");
    project.stamp(["render", "sneaky", "--out", "out", "--version", "1.0.0"]).run().success();
    // Rendered among accounts whose `main.tf` reads the same: the guard's check of that text,
    // made once for all of them, holds under the hostile name's header too.
    for i in 0..8 {
        project.write(&format!("accounts/plain-{i}.yaml"), "archetype: open\n");
    }
    project.stamp(["render", "--all", "--out", "all", "--version", "1.0.0"]).run().success();
    assert_eq!(project.read("all/sneaky/main.tf"), project.read("out/main.tf"));
    for file in ["main.tf", "stamp_backend.tf", "stamp_metadata.tf"] {
        let text = project.read(&format!("out/{file}"));
        let body: hcl::Body = hcl::from_str(&text).unwrap();
        let blocks: Vec<&str> = body.blocks().map(hcl::Block::identifier).collect();
        assert!(!text.contains("< 1.0\"\n"), "{file}:\n{text}");
        assert!(blocks.iter().filter(|b| **b == "terraform").count() <= 1, "{file}:\n{text}");
        assert!(text.lines().take(3).all(|l| l.starts_with('#')), "{file}:\n{text}");
    }
}

#[test]
fn hostile_map_keys_keep_the_output_fmt_clean() {
    let keys = [
        "{",
        "}",
        "a{b",
        "}{",
        "${x}",
        "%{if}",
        "\"",
        "\\",
        "{\"a\" = 1}",
        "[",
        "]",
        "(",
        ")",
        "#",
        "//",
        "/*",
        "=",
        "a = b",
        "<<EOT",
        "\u{e9}{",
        "{}}}",
        "{{{",
    ];
    let mut account = String::from("archetype: open\ntags:\n");
    for (i, key) in keys.iter().enumerate() {
        account.push_str(&format!("  {}: v{i}\n", serde_json::to_string(key).unwrap()));
    }
    let template = "locals {\n  tags = {{ config.tags | hcl }}\n  after = {\n    a = 1\n    bb = 2\n  }\n}\n";
    let project = permissive_project(template, &account);
    project.stamp(["render", "evil", "--out", "out", "--version", "1.0.0"]).run().success();
    let out = project.path().join("out");
    let result = terraform_command(&out).args(["fmt", "-check", "-diff", "."]).output().unwrap();
    assert!(result.status.success(), "not terraform fmt-clean:\n{}", String::from_utf8_lossy(&result.stdout));
    let main = parse(&project.read("out/main.tf"));
    assert_eq!(main["locals"]["tags"]["{"], "v0");
    assert_eq!(main["locals"]["after"]["bb"], 2);
}

#[test]
fn a_playground_copies_no_secret() {
    let project = Project::example();
    project.mark_sensitive("service");
    project
        .stamp(["playground", "new", "try-2", "--from", "local-staging", "--owner", "ana", "--ttl", "8h", "--no-apply"])
        .run()
        .success();
    let written = project.read("fixtures/accounts/playgrounds/try-2.yaml");
    assert!(!written.contains("service:") && !written.contains("replicas"), "{written}");
}

#[test]
fn a_sensitive_network_is_still_taken() {
    // Sensitive values stay out of the account summaries the allocation reads: the accounts
    // holding them are read whole, so no two playgrounds get one network or zone.
    let project = Project::example();
    project.mark_sensitive("network");
    project.mark_sensitive("dns");
    let new = |name: &str| {
        project
            .stamp([
                "playground",
                "new",
                name,
                "--from",
                "local-staging",
                "--owner",
                "ana",
                "--ttl",
                "8h",
                "--no-apply",
            ])
            .run()
            .success()
    };
    new("try-3");
    new("try-4");
    let cidr = |name: &str| {
        let written = project.read(&format!("fixtures/accounts/playgrounds/{name}.yaml"));
        let line = written.lines().find(|l| l.trim_start().starts_with("cidr:")).map(str::to_string);
        line.unwrap_or_else(|| panic!("no network in {written}"))
    };
    assert_ne!(cidr("try-3"), cidr("try-4"));
    // A zone taken by an account whose zone is sensitive is refused.
    let zone = project.read("fixtures/accounts/playgrounds/try-3.yaml");
    assert!(zone.contains("zone: try-3."), "{zone}");
    fs_err::rename(
        project.path().join("fixtures/accounts/playgrounds/try-3.yaml"),
        project.path().join("fixtures/accounts/playgrounds/other.yaml"),
    )
    .unwrap();
    let out = project
        .stamp(["playground", "new", "try-3", "--from", "local-staging", "--owner", "ana", "--ttl", "8h", "--no-apply"])
        .run()
        .failure(1);
    assert!(out.stderr.contains("is used by another account"), "{}", out.stderr);
}

#[test]
fn playground_arguments_cannot_become_yaml() {
    let project = Project::example();
    for owner in ["ana\nhooks: {post_deploy: [{name: pwn, run: id}]}\n#", "ana: {hooks: x}", "*alias", "'ana'\n"] {
        let out = project
            .stamp([
                "playground",
                "new",
                "try-1",
                "--from",
                "local-staging",
                "--owner",
                owner,
                "--ttl",
                "8h",
                "--no-apply",
            ])
            .run();
        let path = project.path().join("fixtures/accounts/playgrounds/try-1.yaml");
        if out.code == 0 {
            // Accepted: written as a value, so the file has no key the owner did not give.
            let text = project.read("fixtures/accounts/playgrounds/try-1.yaml");
            let list = project.stamp(["list", "--format", "json"]).run().success();
            assert!(list.stdout.contains("\"try-1\""), "{}", list.stdout);
            assert!(!text.lines().any(|l| l.starts_with("hooks")), "{text}");
            let check = project.stamp(["check", "try-1"]).run();
            assert!(!check.stderr.contains("hooks"), "{}", check.stderr);
            fs_err::remove_file(&path).unwrap();
        } else {
            assert_eq!(out.code, 1, "{}", out.stderr);
            assert!(!path.exists(), "a refused playground left its file");
        }
    }
}

#[test]
fn one_hostile_account_file_stops_nothing_else() {
    let project = Project::example();
    let mut laughs = String::from("archetype: local-platform\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..30 {
        let p = i - 1;
        laughs
            .push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    project
        .write("fixtures/accounts/deep.yaml", &format!("archetype: local-platform\nx: {}{}\n", "[".repeat(3000), "]".repeat(3000)))
        .write("fixtures/accounts/laughs.yaml", &laughs)
        .write("fixtures/accounts/keys.yaml", "archetype: local-platform\ntags:\n  1: a\n  \"1\": b\n")
        .write("fixtures/accounts/bigint.yaml", "archetype: local-platform\nport: 18446744073709551615\n")
        .write(
            "fixtures/accounts/forever.yaml",
            &project.read("fixtures/accounts/local-qa.yaml").replace("environment: qa", "environment: qa\nname: forever\nephemeral: true\nttl: 99999999999999d\ncreated_at: 9999-12-31T23:00:00Z").replace("10.42.0.0/16", "10.99.0.0/16").replace("qa.local", "forever.local").replace("18280", "18299"),
        );
    let check = project.stamp(["check"]).run().failure(1);
    for expected in [
        "deep.yaml:2:",
        "nest deeper than 64 levels",
        "laughs.yaml:3:",
        "YAML aliases",
        "keys.yaml:4:",
        "this key is set on line 3 already",
        "bigint.yaml:2",
        "does not fit in 64 bits",
        "ends after the year 9999",
    ] {
        assert!(check.stderr.contains(expected), "{expected} missing:\n{}", check.stderr);
    }
    // The other accounts still list, and the reaper (and the kill switch) still judge them.
    let list = project.stamp(["list"]).run().success();
    assert!(list.stdout.contains("local-staging"), "{}", list.stdout);
    let reap = project.stamp(["reap", "--dry-run"]).run();
    assert!(reap.code == 0 || reap.code == 1, "{}", reap.snapshot());
    assert!(reap.stdout.contains("forever"), "{}", reap.stdout);
    let kill = project.stamp(["reap", "--dry-run", "--all-ephemeral", "--confirm", "kill-switch"]).run();
    assert!(kill.code == 0 || kill.code == 1, "{}", kill.snapshot());
}

#[test]
fn hundreds_of_hostile_map_keys_stay_fmt_clean() {
    let specials =
        ['{', '}', '[', ']', '(', ')', '"', '\\', '$', '%', '#', '/', '*', '=', '<', '>', ',', ':', '~', ' ', 'a', 'é'];
    let mut keys = std::collections::BTreeSet::new();
    for a in specials {
        for b in specials {
            keys.insert(format!("{a}{b}"));
            keys.insert(format!("k{a}{b}k"));
        }
    }
    let mut account = String::from("archetype: open\ntags:\n");
    for (i, key) in keys.iter().enumerate() {
        account.push_str(&format!("  {}: v{i}\n", serde_json::to_string(key).unwrap()));
    }
    let template = "locals {\n  tags = {{ config.tags | hcl }}\n  after = {\n    a = 1\n    bb = 2\n  }\n}\n";
    let project = permissive_project(template, &account);
    project.stamp(["render", "evil", "--out", "out", "--version", "1.0.0"]).run().success();
    let result = terraform_command(&project.path().join("out")).args(["fmt", "-check", "-diff", "."]).output().unwrap();
    assert!(keys.len() > 850, "{}", keys.len());
    assert!(result.status.success(), "not terraform fmt-clean:\n{}", String::from_utf8_lossy(&result.stdout));
}

#[test]
fn no_diagnostic_shows_a_sensitive_value() {
    let project = permissive_project("locals {\n  a = 1\n}\n", "archetype: open\n");
    project.write(
        "archetypes/open/schema.json",
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "properties": {
                "api_token": {"writeOnly": true},
                "db": {"type": "object", "properties": {"password": {"writeOnly": true}, "port": {"type": "integer"}}},
                "account_id": {"type": "string", "writeOnly": true},
                "tags": {"type": "object", "properties": {"Pin": {"writeOnly": true}}}
            }}"#,
    );
    project
        .write(
            "accounts/evil.yaml",
            "archetype: open\naccount_id: acct-secret-1\ndb: {password: hunter2-long-secret, port: 5432x}\n",
        )
        .write("accounts/big.yaml", "archetype: open\napi_token: 918273645546372819283746\n")
        .write("accounts/twin.yaml", "archetype: open\naccount_id: acct-secret-1\n")
        .write("accounts/tagged.yaml", "archetype: open\ntags: {Pin: \"4711\"}\n")
        .write("accounts/broken.yaml", "archetype: open\napi_token: \"tok-unterminated\n  more: [\n")
        .write("accounts/cr.yaml", "archetype: open\rapi_token: cr-secret-99\rdb: {port: abc}\r")
        .write("accounts/early.yaml", "{archetype: opn, api_token: early-secret-1}\n");
    let out = project.stamp(["check"]).run().failure(1);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("broken.yaml:"), "{all}");
    for secret in
        ["hunter2", "acct-secret", "918273645546372819283746", "4711", "tok-unterminated", "cr-secret", "early-secret"]
    {
        assert!(!all.contains(secret), "`{secret}` is shown:\n{all}");
    }
    for expected in [
        "`db.port` must be an integer",
        "does not fit in 64 bits",
        "`db.port` must be an integer",
        "would be written into Stamp's `stamp_metadata.tf`",
    ] {
        assert!(all.contains(expected), "{expected} missing:\n{all}");
    }
}

/// A blueprint file's name is a name: a `\` in it (a separator only on Windows) never makes it a
/// path that leads out of the tree when it is written, packed or shown.
#[test]
#[cfg(unix)]
fn a_blueprint_file_name_never_becomes_a_path_out_of_the_tree() {
    let outside = tempfile::tempdir().unwrap();
    let project = permissive_project("locals {\n  a = 1\n}\n", "archetype: open\n");
    let depth = "..\\".repeat(12);
    let target = format!(
        "{depth}{}\\escaped.txt",
        outside.path().display().to_string().trim_start_matches('/').replace('/', "\\")
    );
    project.write(&format!("blueprints/open/{target}"), "written outside\n");
    project.write("blueprints/open/sub\\..\\..\\up.tf.j2", "locals {\n  b = 1\n}\n");
    // A link with such a name is named too (its refusal as a link must not be lost).
    std::os::unix::fs::symlink("/etc/passwd", project.path().join("blueprints/open/l\\k.tf")).unwrap();
    for args in [vec!["check"], vec!["render", "--all", "--out", "out"], vec!["build", "evil", "--version", "1.0.0"]] {
        let out = project.stamp(&args).run().failure(1);
        assert!(
            out.stderr.contains("blueprint.file-name") || out.stderr.contains("holds a `\\`"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("up.tf.j2"), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("l\\k.tf"), "{args:?}: {}", out.stderr);
        assert_eq!(fs_err::read_dir(outside.path()).unwrap().count(), 0, "{args:?}: written outside");
    }
    assert!(!project.path().join("out").exists() && !project.path().join("up.tf").exists());
}

/// A project file is read as a plain file: a link committed in its place (here to a file of
/// secrets outside the project, as `/proc/self/environ` would be) is refused, in the working
/// tree and at a revision, and nothing of its target is shown.
#[test]
#[cfg(unix)]
fn a_link_in_place_of_a_project_file_is_never_followed_out_of_the_project() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("environ");
    fs_err::write(&secret, "CI_TOKEN=ghp-linked-secret-1\n").unwrap();
    let project = Project::example();
    project.commit_all("first");
    for file in ["archetypes/local-platform/archetype.yaml", "archetypes/local-platform/schema.json", "stamp.yaml"] {
        let path = project.path().join(file);
        let kept = fs_err::read(&path).unwrap();
        fs_err::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let out = project.stamp(["check"]).run().failure(1);
        assert!(out.stderr.contains(&format!("`{file}` is a symbolic link")), "{file}: {}", out.stderr);
        assert!(!out.stderr.contains("linked-secret"), "{file}: {}", out.stderr);
        // The same link at a revision, with the working tree as it was.
        project.git(&["add", "-A"]);
        project.git(&["commit", "-qm", "link"]);
        fs_err::remove_file(&path).unwrap();
        fs_err::write(&path, &kept).unwrap();
        let out = project.stamp(["diff", "local-qa@HEAD", "local-qa"]).run().failure(2);
        assert!(
            out.stderr.contains("is a symbolic link") && !out.stderr.contains("linked-secret"),
            "{file}: {}",
            out.stderr
        );
        // `affected` takes an old side whose archetype does not load for a change (every
        // account here), and one whose `stamp.yaml` does not load for an error.
        let out = project.stamp(["affected", "--since", "HEAD"]).run();
        assert_eq!(out.code, i32::from(file == "stamp.yaml"), "{file}: {}", out.stderr);
        assert!(
            !out.stdout.contains("linked-secret") && !out.stderr.contains("linked-secret"),
            "{file}: {}",
            out.stdout
        );
        project.git(&["add", "-A"]);
        project.git(&["commit", "-qm", "plain again"]);
    }
    // Nor the `VERSION` file, whose text an invalid version's error shows.
    std::os::unix::fs::symlink(&secret, project.path().join("VERSION")).unwrap();
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("the VERSION file is not a plain text file"), "{}", out.stderr);
    assert!(!out.stderr.contains("linked-secret"), "{}", out.stderr);
}

/// The cache keeps a digest of each account file: taken with a key kept outside the cache
/// folder, so a copy of the cache does not let anyone test guesses of a secret a file holds.
#[test]
fn the_cache_holds_no_plain_digest_of_an_account_file() {
    use sha2::Digest as _;
    let project = secret_project("locals {\n  name = \"{{ config.name_value }}\"\n}\n");
    project.stamp(["check"]).run().success();
    let account = fs_err::read(project.path().join("accounts/evil.yaml")).unwrap();
    let digest = sha2::Sha256::digest(&account);
    let hex = format!("{digest:x}");
    let mut files = 0;
    for entry in walkdir::WalkDir::new(project.path().join(".stamp/cache")) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            files += 1;
            let bytes = fs_err::read(entry.path()).unwrap();
            let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
            assert!(!holds(hex.as_bytes()) && !holds(&digest), "{} holds the file's digest", entry.path().display());
        }
    }
    assert!(files > 0, "no cache was written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let key = fs_err::metadata(project.path().join(".stamp/cache-key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
    // The cache still serves the next run: the key is kept.
    let again = project.stamp(["check"]).run().success();
    assert!(again.stderr.contains("checked 1 account"), "{}", again.stderr);
}

/// A secret under a misspelt or misplaced key is not known to be one: where the schema marks
/// any value sensitive, an unknown key's line is not shown. The keys of a sensitive map are its
/// value: a message names the map.
#[test]
fn a_secret_under_an_unknown_key_or_as_a_key_is_not_shown() {
    let project = permissive_project("locals {\n  a = 1\n}\n", "archetype: open\n");
    project.write(
        "archetypes/open/schema.json",
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": false,
            "properties": {
                "archetype": {"type": "string"}, "name": {"type": "string"},
                "db": {"type": "object", "additionalProperties": false, "properties": {"password": {"type": "string", "writeOnly": true}, "port": {"type": "integer"}}},
                "secrets": {"type": "object", "writeOnly": true, "additionalProperties": {"type": "string"}},
                "vault": {"type": "object", "additionalProperties": {"type": "string", "writeOnly": true}}
            }}"#,
    );
    project
        .write("accounts/misspelt.yaml", "archetype: open\ndb:\n  pasword: misspelt-secret-1\n")
        .write("accounts/misplaced.yaml", "archetype: open\npassword: misplaced-secret-2\n")
        .write("accounts/keyed.yaml", "archetype: open\nsecrets:\n  sk_live_keyed_secret_3: 12\n")
        // An error beside a secret on its line: its column would tell where the secret ends.
        .write("accounts/neighbour.yaml", "archetype: open\ndb: {password: neighbour-secret-6, port: x}\n")
        // A secret written one level too high: where a map of secrets belongs.
        .write("accounts/flat.yaml", "archetype: open\nvault: flat-secret-5\n")
        // Read before any schema is known: which keys are secrets is not known yet.
        .write(
            "accounts/twice.yaml",
            "archetype: open\nsecrets:\n  sk_live_twice_secret_4: a\n  sk_live_twice_secret_4: b\n",
        );
    for format in ["text", "json"] {
        let out = project.stamp(["check", "--format", format]).run().failure(1);
        let all = format!("{}{}", out.stdout, out.stderr);
        for secret in
            ["misspelt-secret", "misplaced-secret", "keyed_secret", "twice_secret", "flat-secret", "neighbour-secret"]
        {
            assert!(!all.contains(secret), "`{secret}` is shown:\n{all}");
        }
        for expected in [
            "unknown key `pasword`",
            "unknown key `password`",
            "`secrets` (sensitive) is not valid",
            "this key is set on line 3 already",
            "`vault` (may be sensitive) is not valid: it must be an object",
        ] {
            assert!(all.contains(expected), "{expected} missing:\n{all}");
        }
        if format == "text" {
            assert!(all.contains("misspelt.yaml:3") && all.contains("misplaced.yaml:2"), "{all}");
            assert!(all.contains("neighbour.yaml:2") && !all.contains("neighbour.yaml:2:"), "{all}");
        }
    }
    // The only archetype that marks secrets does not load: an account file that does not
    // parse may hold one all the same.
    project.write("archetypes/open/schema.json", "{\"writeOnly\": broken");
    project.write("accounts/unparsed.yaml", "archetype: open\npassword: unparsed-secret-7: x\n");
    let out = project.stamp(["check"]).run().failure(1);
    assert!(out.stderr.contains("unparsed.yaml"), "{}", out.stderr);
    assert!(!out.stderr.contains("unparsed-secret"), "{}", out.stderr);
    assert!(out.stderr.contains("unparsed.yaml:2") && !out.stderr.contains("unparsed.yaml:2:"), "{}", out.stderr);
}

/// A secret that happens to equal Stamp's own text (here the commit stamped in) is not taken
/// for a leak: the search leaves the version and commit out, so `check` (which does not ask git
/// when no template reads the version) and `render` agree.
#[test]
fn a_secret_equal_to_the_commit_is_no_leak() {
    let project = Project::example();
    project.mark_sensitive("owner");
    project.commit_all("first");
    let commit = project.git(&["rev-parse", "--short=12", "HEAD"]);
    let file = "fixtures/accounts/local-staging.yaml";
    project
        .write(file, &project.read(file).replace("owner: platform-team@acme.example", &format!("owner: \"{commit}\"")));
    project.stamp(["check", "local-staging"]).env("STAMP_VERSION", "1.0.0").run().success();
    project.stamp(["render", "local-staging", "--out", "out"]).env("STAMP_VERSION", "1.0.0").run().success();
    let tree = common::tree_text(&project.path().join("out"));
    assert!(tree.contains(&commit), "the commit is stamped in");
}

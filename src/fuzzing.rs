//! Entry points for the fuzz targets in `fuzz/` (`make fuzz`), kept in the library so the
//! seed corpora also run as ordinary tests (`tests/fuzz_corpus.rs`). Each takes any bytes and
//! must neither panic nor break the promise it checks.

use std::path::Path;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::config::Project;
use crate::render::Renderer;
use crate::schema::Validators;
use crate::version::BuildVersion;

/// `yaml`: the YAML loader, on any text.
pub fn yaml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::yaml::parse("fuzz.yaml", text);
    }
}

/// The example project, with its compiled schemas and blueprints, loaded once.
struct Example {
    project: &'static Project,
    validators: Validators,
    renderer: Renderer<'static>,
}

fn example() -> &'static Example {
    static EXAMPLE: OnceLock<Example> = OnceLock::new();
    EXAMPLE.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let (project, _) =
            Project::load(root).unwrap_or_else(|r| panic!("the example project loads: {}", r.messages()));
        let project: &'static Project = Box::leak(Box::new(project));
        let (validators, _) = Validators::compile(project, None);
        let version = BuildVersion { version: "1.0.0".into(), commit: "fuzz".into(), dirty: false };
        let (renderer, _) = Renderer::new(project, version, None);
        Example { project, validators, renderer }
    })
}

/// `account`: an account file of the example project, loaded, validated against its
/// archetype's schema and rendered with its blueprint, as `stamp check` does.
pub fn account(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let example = example();
    let path = example.project.root.join(&example.project.file.accounts).join("fuzz.yaml");
    let display = example.project.display(&path);
    let Ok(account) = example.project.account_from_text(&path, &display, text) else { return };
    let _ = crate::ephemeral::Lifetime::of(&account);
    if example.validators.validate(example.project, &account).is_empty() {
        let _ = example.renderer.render(&account, Path::new("build/fuzz"));
    }
}

/// `guard`: the output guard (lexer, formatter, marker checks) on any text, some bytes made
/// into the guard's markers. Whatever it lets through has no marker left.
pub fn guard(data: &[u8]) {
    let text: String = String::from_utf8_lossy(data)
        .chars()
        .map(|c| match c {
            '\u{1}' => crate::render::hcl_value::STRING_OPEN,
            '\u{2}' => crate::render::hcl_value::STRING_CLOSE,
            '\u{3}' => crate::render::hcl_value::LITERAL_OPEN,
            '\u{4}' => crate::render::hcl_value::LITERAL_CLOSE,
            c => c,
        })
        .collect();
    if let Ok(guarded) = crate::render::guard::check_and_format(&text) {
        assert!(!guarded.text.contains(crate::render::hcl_value::is_marker), "markers left in:\n{}", guarded.text);
        if let Ok(body) = hcl_edit::parser::parse_body(&guarded.text) {
            let _ = crate::render::guard::cross_check(&guarded.text, &body, &guarded.spans, 0);
        }
    }
}

/// Template text put before and between values, with what HCL reads it as.
const FRAGMENTS: &[(&str, &str)] = &[
    ("", ""),
    ("a-", "a-"),
    ("$", "$"),
    ("%", "%"),
    ("$$", "$$"),
    ("{", "{"),
    ("}", "}"),
    ("\\\\", "\\"),
    ("\\\"", "\""),
    ("\\", "\\"),
    ("$${", "${"),
    ("\\u00e9", "é"),
];

/// `template`: two values (any text) printed into a quoted string between template fragments.
/// The render is refused, or the string reads back (by hcl-rs) as exactly the fragments'
/// text and the values, with no interpolation.
pub fn template(data: &[u8]) {
    let [f0, f1, f2, rest @ ..] = data else { return };
    let pick = |b: &u8| FRAGMENTS[usize::from(*b) % FRAGMENTS.len()];
    let (f0, f1, f2) = (pick(f0), pick(f1), pick(f2));
    if f2.0 == "\\" {
        // Before the closing quote, a lone backslash is the template's own mistake.
        return;
    }
    let text = String::from_utf8_lossy(rest);
    let (a, b) = text.split_once('\u{fffd}').unwrap_or((&text, ""));
    let template = format!("locals {{\n  v = \"{}{{{{ config.a }}}}{}{{{{ config.b }}}}{}\"\n}}\n", f0.0, f1.0, f2.0);
    let config: Value = json!({"a": a, "b": b});
    let Ok(rendered) = crate::render::render_template(&template, &config) else { return };
    let body: hcl::Body = hcl::from_str(&rendered).unwrap_or_else(|e| panic!("not HCL: {e}\n{rendered}"));
    let v = body
        .blocks()
        .find(|b| b.identifier() == "locals")
        .and_then(|b| b.body().attributes().find(|a| a.key() == "v"))
        .map(|a| a.expr().clone());
    let expected = format!("{}{a}{}{b}{}", f0.1, f1.1, f2.1);
    assert_eq!(v, Some(hcl::Expression::String(expected)), "{rendered}");
}

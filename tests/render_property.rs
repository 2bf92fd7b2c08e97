//! A property of the renderer: for any values, a template that puts them next to each other,
//! next to `$`, `%`, `\`, quotes and braces, inside `${...}` and in heredocs, either is refused
//! or renders text that reads back as exactly the intended strings: first by hcl-rs (for many
//! random cases, with shrinking), then by the real Terraform (`terraform console`) for a fixed
//! sample, so the two readings cannot drift apart.

mod common;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

/// Template text placed before and between values, with what HCL reads it as (when no value
/// beside it joins it into something else, which the guard refuses).
const FRAGMENTS: &[(&str, &str)] = &[
    ("", ""),
    ("a-", "a-"),
    ("$", "$"),
    ("%", "%"),
    ("$$", "$$"),
    ("%%", "%%"),
    ("{", "{"),
    ("}", "}"),
    ("\\\\", "\\"),
    ("\\\"", "\""),
    ("\\", "\\"),
    ("$${", "${"),
    ("%%{", "%{"),
    ("${upper(\"x\")}", "X"),
    ("\\u00e9", "é"),
];

/// Characters values are made of: the ones that matter to HCL, and some that do not.
fn value() -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        Just('$'),
        Just('%'),
        Just('{'),
        Just('}'),
        Just('\\'),
        Just('"'),
        Just('~'),
        Just('\n'),
        Just('\t'),
        Just('\u{7}'),
        Just('\u{e000}'),
        Just('é'),
        Just('🦀'),
        Just(' '),
        Just('#'),
        Just('a'),
        Just('u'),
    ];
    prop::collection::vec(chars, 0..10).prop_map(String::from_iter)
}

/// One case: fragments around two values, in a quoted string, an interpolation and a heredoc.
#[derive(Debug, Clone)]
struct Case {
    fragments: [usize; 3],
    a: String,
    b: String,
}

fn case() -> impl Strategy<Value = Case> {
    // The last fragment comes before the closing quote: a lone `\` there is the template's own
    // mistake, whatever the values.
    let last = (0..FRAGMENTS.len()).prop_filter("not a lone backslash", |i| FRAGMENTS[*i].0 != "\\");
    ((0..FRAGMENTS.len()), (0..FRAGMENTS.len()), last, value(), value()).prop_map(|(f0, f1, f2, a, b)| Case {
        fragments: [f0, f1, f2],
        a,
        b,
    })
}

impl Case {
    fn template(&self) -> String {
        let [f0, f1, f2] = self.fragments.map(|i| FRAGMENTS[i].0);
        format!(
            "locals {{\n  v = \"{f0}{{{{ config.a }}}}{f1}{{{{ config.b }}}}{f2}\"\n  w = \"${{join(\"\", [{{{{ config.a | hcl }}}}, \"|\"])}}\"\n  h = <<EOT\n${{ {{{{ config.b | hcl }}}} }}\nEOT\n}}\n"
        )
    }

    fn config(&self) -> Value {
        json!({"a": self.a, "b": self.b})
    }

    /// What `v`, `w` and `h` must read as.
    fn expected(&self) -> [String; 3] {
        let [f0, f1, f2] = self.fragments.map(|i| FRAGMENTS[i].1);
        [format!("{f0}{}{f1}{}{f2}", self.a, self.b), format!("{}|", self.a), format!("{}\n", self.b)]
    }
}

proptest! {
    #![proptest_config(Config { cases: 2_000, ..Config::default() })]

    #[test]
    fn values_read_back_exactly_or_are_refused(case in case()) {
        // hcl-rs reads, it does not evaluate: the fragment with a real interpolation is for the
        // Terraform test below.
        prop_assume!(!case.fragments.iter().any(|&i| FRAGMENTS[i].0.starts_with("${")));
        let Ok(text) = stamp::render::render_template(&case.template(), &case.config()) else { return Ok(()) };
        let body: hcl::Body = hcl::from_str(&text).map_err(|e| TestCaseError::fail(format!("not HCL: {e}\n{text}")))?;
        let v = body
            .blocks()
            .find(|b| b.identifier() == "locals")
            .and_then(|b| b.body().attributes().find(|a| a.key() == "v"))
            .map(|a| a.expr().clone());
        // No interpolation can appear: `v` is one plain string, exactly the intended one.
        prop_assert_eq!(v, Some(hcl::Expression::String(case.expected()[0].clone())), "{}", text);
    }
}

/// The same property with the real Terraform reading the text, for a fixed sample of cases.
#[test]
fn terraform_reads_back_exactly_what_was_meant() {
    let mut runner = TestRunner::deterministic();
    let mut cases = Vec::new();
    let mut locals = String::from("locals {\n");
    let mut expressions = Vec::new();
    let mut refused = 0;
    while cases.len() < 300 {
        let case = case().new_tree(&mut runner).unwrap().current();
        let Ok(text) = stamp::render::render_template(&case.template(), &case.config()) else {
            refused += 1;
            continue;
        };
        // Each case's locals, renamed apart, in one file.
        let i = cases.len();
        let body = text.trim().strip_prefix("locals {").and_then(|b| b.strip_suffix('}')).unwrap();
        let body = body
            .replace("\n  v ", &format!("\n  v{i} "))
            .replace("\n  w ", &format!("\n  w{i} "))
            .replace("\n  h ", &format!("\n  h{i} "));
        locals.push_str(&body);
        expressions.extend([format!("local.v{i}"), format!("local.w{i}"), format!("local.h{i}")]);
        cases.push(case);
    }
    locals.push_str("}\n");
    assert!(refused < 300, "almost everything was refused: the property says little");
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("main.tf"), &locals).unwrap();
    let values = common::console(dir.path(), &expressions);
    for (i, case) in cases.iter().enumerate() {
        let got: Vec<&str> = values[i * 3..i * 3 + 3].iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(got, case.expected(), "case {case:?}\ntemplate:\n{}", case.template());
    }
}

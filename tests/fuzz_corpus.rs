//! The fuzz targets' seed corpora (`fuzz/corpus/<target>/`) and the inputs the fuzzers found
//! (added there once fixed) run as ordinary tests: every input must pass its target's checks.

fn replay(target: &str, run: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in fs_err::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = fs_err::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "fuzz target `{target}` fails on `{}`", path.display());
        inputs += 1;
    }
    assert!(inputs > 0, "no corpus for `{target}`");
}

#[test]
fn yaml_corpus() {
    replay("yaml", stamp::fuzzing::yaml);
}

#[test]
fn account_corpus() {
    replay("account", stamp::fuzzing::account);
}

#[test]
fn guard_corpus() {
    replay("guard", stamp::fuzzing::guard);
}

#[test]
fn template_corpus() {
    replay("template", stamp::fuzzing::template);
}

//! The crate's layering, checked on its source: no two top-level modules depend on each other,
//! directly or through others (`config` never reaches into `pipeline`, `ops` never into
//! `report`, ...), and neither do two operations in `ops/`. A cycle makes a change in one
//! module a change in all of them; this test names the cycle when one appears.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// For each module, the modules its code (tests excluded) names with `prefix` (`crate::`,
/// `super::`).
fn dependencies(dir: &Path, prefixes: &[&str], recurse: bool) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules = BTreeSet::new();
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if (path.is_dir() && recurse) || path.extension().is_some_and(|e| e == "rs") {
            modules.insert(name);
        }
    }
    modules.retain(|m| !["lib", "main", "mod"].contains(&m.as_str()));
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in &modules {
        let file = dir.join(format!("{module}.rs"));
        let files: Vec<std::path::PathBuf> = if file.is_file() {
            vec![file]
        } else {
            walkdir::WalkDir::new(dir.join(module))
                .into_iter()
                .map(|e| e.unwrap().into_path())
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect()
        };
        let uses = graph.entry(module.clone()).or_default();
        for file in files {
            let text = fs_err::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for prefix in prefixes {
                for (at, _) in code.match_indices(prefix) {
                    let rest = &code[at + prefix.len()..];
                    let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if modules.contains(&name) && &name != module {
                        uses.insert(name);
                    }
                    // `use super::{a, b::c}`
                    if let Some(group) = rest.strip_prefix('{') {
                        let group = &group[..group.find('}').unwrap_or(group.len())];
                        for item in group.split(',') {
                            let name = item.trim().split("::").next().unwrap_or_default().to_string();
                            if modules.contains(&name) && &name != module {
                                uses.insert(name);
                            }
                        }
                    }
                }
            }
        }
    }
    graph
}

/// A cycle of `graph`, if it has one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut found = path[start..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_have_no_dependency_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = dependencies(&src, &["crate::"], true);
    assert!(graph.len() > 10, "{graph:?}");
    if let Some(found) = cycle(&graph) {
        panic!("modules depend on each other in a cycle: {}", found.join(" -> "));
    }
}

#[test]
fn operations_have_no_dependency_cycle() {
    let ops = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ops");
    let graph = dependencies(&ops, &["super::", "crate::ops::"], false);
    assert!(graph.contains_key("migrate") && graph["migrate"].contains("environments"), "{graph:?}");
    if let Some(found) = cycle(&graph) {
        panic!("operations depend on each other in a cycle: {}", found.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), ["b".to_string()].into()),
        ("b".to_string(), ["c".to_string()].into()),
        ("c".to_string(), ["a".to_string()].into()),
    ]
    .into();
    assert_eq!(cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
}

//! Terraform's dependency lock file (`.terraform.lock.hcl`): what it pins, which lock an
//! account's `init` starts from, version constraints, and the `h1:` checksum of an unpacked
//! provider.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use hcl::{Body, Expression, Structure};
use sha2::{Digest, Sha256};

use super::{Requirements, normalise};

/// Terraform's dependency lock file, in a root module.
pub const LOCK_FILE: &str = ".terraform.lock.hcl";

/// One provider of a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub version: String,
    /// `h1:` and `zh:` checksums.
    pub hashes: BTreeSet<String>,
}

/// Whether `source` is a provider address (`HOST/NAMESPACE/TYPE`) and `version` a version
/// Terraform would write: they name folders of the mirror, so nothing else may pass (no `..`,
/// no `/` in a part).
pub fn valid(source: &str, version: &str) -> bool {
    let part = |p: &str, extra: &[char]| {
        !p.is_empty()
            && !p.starts_with('.')
            && !p.contains("..")
            && p.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || extra.contains(&c))
    };
    let parts: Vec<&str> = source.split('/').collect();
    parts.len() == 3
        && part(parts[0], &[':'])
        && part(parts[1], &[])
        && part(parts[2], &[])
        && version.len() <= 64
        && part(version, &['+'])
}

fn string_attribute(body: &Body, key: &str) -> Option<String> {
    body.0.iter().filter_map(Structure::as_attribute).find_map(|a| match a.expr() {
        Expression::String(v) if a.key() == key => Some(v.clone()),
        _ => None,
    })
}

/// The providers a lock file pins, by source. Entries that are not a provider address and a
/// version are left out (they could not name a folder of the mirror).
pub fn locked(text: &str) -> Result<BTreeMap<String, Pinned>, String> {
    let body = hcl::parse(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for block in body.0.iter().filter_map(Structure::as_block).filter(|b| b.identifier() == "provider") {
        let Some(source) = block.labels().first() else { continue };
        let source = normalise(source.as_str());
        let Some(version) = string_attribute(block.body(), "version").filter(|v| valid(&source, v)) else { continue };
        let hashes = block
            .body()
            .0
            .iter()
            .filter_map(Structure::as_attribute)
            .filter(|a| a.key() == "hashes")
            .flat_map(|a| match a.expr() {
                Expression::Array(items) => items
                    .iter()
                    .filter_map(|i| match i {
                        Expression::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        out.insert(source, Pinned { version, hashes });
    }
    Ok(out)
}

/// The lock file an account's `init` starts from, given the tree's own (`tree`), the one Stamp
/// kept from the account's last `init` (`kept`) and what the tree requires:
/// - a tree with a lock file: the kept one when it pins the same versions with at least the
///   tree's checksums (it is the tree's, completed by `init` with this platform's), else the
///   tree's;
/// - a tree without: the kept one, less the providers whose pinned version the requirements no
///   longer allow (as `terraform init -upgrade` would choose them again), so a changed
///   constraint neither fails `init` nor moves the other providers.
pub fn starting_lock(tree: Option<&str>, kept: Option<&str>, requirements: &Requirements) -> Option<String> {
    let kept_pins = kept.and_then(|k| locked(k).ok());
    if let Some(tree) = tree {
        let tree_pins = locked(tree).ok()?;
        let completes = kept_pins.is_some_and(|k| {
            tree_pins.iter().all(|(source, pin)| {
                k.get(source).is_some_and(|p| p.version == pin.version && pin.hashes.is_subset(&p.hashes))
            })
        });
        return Some(if completes { kept.unwrap_or(tree) } else { tree }.to_string());
    }
    let (kept, pins) = (kept?, kept_pins?);
    let stale: BTreeSet<&String> = pins
        .iter()
        .filter(|(source, pin)| {
            requirements.providers.get(*source).is_some_and(|c| allows(c, &pin.version) == Some(false))
        })
        .map(|(source, _)| source)
        .collect();
    if stale.is_empty() {
        return Some(kept.to_string());
    }
    let body = hcl::parse(kept).ok()?;
    let rest: Vec<Structure> = body
        .0
        .into_iter()
        .filter(|s| match s {
            Structure::Block(b) if b.identifier() == "provider" => {
                !b.labels().first().is_some_and(|l| stale.contains(&normalise(l.as_str())))
            }
            _ => true,
        })
        .collect();
    hcl::format::to_string(&Body(rest)).ok()
}

/// A version as Terraform orders them: major, minor, patch, then a release after its
/// pre-releases.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    numbers: [u64; 3],
    release: bool,
    pre: String,
}

/// `1.2.3`, `1.2`, `1` or `1.2.3-rc.1+build` (build metadata ignored); with the count of
/// numbers given.
fn parse_version(text: &str) -> Option<(Version, usize)> {
    let text = text.trim().trim_start_matches('v');
    let text = text.split('+').next()?;
    let (numbers, pre) = text.split_once('-').map_or((text, ""), |(n, p)| (n, p));
    let parts: Vec<&str> = numbers.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let mut out = [0; 3];
    for (slot, part) in out.iter_mut().zip(&parts) {
        *slot = part.parse().ok()?;
    }
    Some((Version { numbers: out, release: pre.is_empty(), pre: pre.to_string() }, parts.len()))
}

/// Whether Terraform's version `constraints` (`>= 1.2, < 2.0`, `~> 6.0`, `!= 1.3.0`, `1.2.3`)
/// allow `version`; `None` when either cannot be read.
pub fn allows(constraints: &str, version: &str) -> Option<bool> {
    let (version, _) = parse_version(version)?;
    for constraint in constraints.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let operator = ["~>", ">=", "<=", "!=", ">", "<", "="].into_iter().find(|op| constraint.starts_with(op));
        let bound = operator.map_or(constraint, |op| &constraint[op.len()..]);
        let (bound, given) = parse_version(bound)?;
        // A pre-release is only ever chosen by an exact constraint.
        if !version.release && !matches!(operator, None | Some("=")) {
            return Some(false);
        }
        let ok = match operator {
            None | Some("=") => version == bound,
            Some("!=") => version != bound,
            Some(">") => version > bound,
            Some(">=") => version >= bound,
            Some("<") => version < bound,
            Some("<=") => version <= bound,
            _ => {
                // `~> 1.2` allows 1.x from 1.2; `~> 1.2.3` allows 1.2.x from 1.2.3.
                let [major, minor, _] = bound.numbers;
                let upper = if given >= 3 { [major, minor + 1, 0] } else { [major + 1, 0, 0] };
                let upper = Version { numbers: upper, release: false, pre: String::new() };
                version >= bound && version < upper
            }
        };
        if !ok {
            return Some(false);
        }
    }
    Some(true)
}

/// The `h1:` checksum Terraform records for an unpacked provider folder: the SHA-256 of the
/// sorted lines `<sha256 of file>  <relative path>`, base64 (Go's `dirhash.Hash1`).
pub fn h1(dir: &Path) -> std::io::Result<String> {
    use base64::Engine as _;
    let mut lines = Vec::new();
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(std::io::Error::other)?;
        // As Go's `filepath.Walk`: a linked file is read, a linked folder is not entered.
        let kind = entry.file_type();
        if !(kind.is_file() || (kind.is_symlink() && entry.path().is_file())) {
            continue;
        }
        let relative = entry.path().strip_prefix(dir).map_err(std::io::Error::other)?;
        let name = relative.to_string_lossy().replace('\\', "/");
        let mut file = fs_err::File::open(entry.path())?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        lines.push(format!("{:x}  {name}\n", hasher.finalize()));
    }
    lines.sort_by(|a, b| a.split_once("  ").map(|x| x.1).cmp(&b.split_once("  ").map(|x| x.1)));
    let digest = Sha256::digest(lines.concat().as_bytes());
    Ok(format!("h1:{}", base64::engine::general_purpose::STANDARD.encode(digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(entries: &[(&str, &str, &[&str])]) -> String {
        let mut out = String::new();
        for (source, version, hashes) in entries {
            let hashes: Vec<String> = hashes.iter().map(|h| format!("\"{h}\"")).collect();
            out.push_str(&format!(
                "provider \"{source}\" {{\n  version = \"{version}\"\n  hashes = [{}]\n}}\n",
                hashes.join(", ")
            ));
        }
        out
    }

    #[test]
    fn lock_files_are_read_and_odd_entries_left_out() {
        let pins = locked(&lock(&[("registry.terraform.io/hashicorp/aws", "6.2.0", &["h1:x", "zh:y"])])).unwrap();
        let aws = &pins["registry.terraform.io/hashicorp/aws"];
        assert_eq!(aws.version, "6.2.0");
        assert!(aws.hashes.contains("h1:x") && aws.hashes.contains("zh:y"));
        assert!(locked("provider {").is_err());
        for (source, version) in [
            ("registry.terraform.io/../../etc", "1.0.0"),
            ("../../x/y", "1.0.0"),
            ("registry.terraform.io/hashicorp/aws", "../../../tmp"),
            ("registry.terraform.io/hashicorp/aws", "1/2"),
            ("registry.terraform.io/hashicorp/aws", ""),
        ] {
            assert!(locked(&lock(&[(source, version, &[])])).unwrap().is_empty(), "{source} {version}");
        }
        assert_eq!(locked(&lock(&[("example.com:8443/a/b", "1.2.3-rc.1+x", &[])])).unwrap().len(), 1);
    }

    #[test]
    fn constraints_follow_terraform() {
        for (constraint, version, expected) in [
            (">= 1.0.0", "1.0.0", true),
            (">= 1.0.0, < 2.0.0", "2.0.0", false),
            ("~> 6.0", "6.9.1", true),
            ("~> 6.0", "7.0.0", false),
            ("~> 6.2.1", "6.2.9", true),
            ("~> 6.2.1", "6.3.0", false),
            ("~> 6", "6.5.0", true),
            ("!= 1.3.0", "1.3.0", false),
            ("1.2.3", "1.2.3", true),
            ("= 1.2.3", "1.2.4", false),
            (">= 1.0.0", "2.0.0-beta1", false),
            ("2.0.0-beta1", "2.0.0-beta1", true),
            ("", "1.0.0", true),
        ] {
            assert_eq!(allows(constraint, version), Some(expected), "{constraint} / {version}");
        }
        assert_eq!(allows("~> banana", "1.0.0"), None);
    }

    fn requiring(constraint: &str) -> Requirements {
        let mut r = Requirements::default();
        r.providers.insert("example.com/a/b".into(), constraint.into());
        r.providers.insert("example.com/a/c".into(), String::new());
        r
    }

    #[test]
    fn the_starting_lock_keeps_what_still_fits() {
        let kept = lock(&[("example.com/a/b", "1.1.0", &["h1:b"]), ("example.com/a/c", "3.0.0", &["h1:c"])]);
        // Unchanged requirements: the kept lock as it is.
        assert_eq!(starting_lock(None, Some(&kept), &requiring(">= 1.0.0")).as_deref(), Some(kept.as_str()));
        // A constraint that rules out the pinned version drops that provider only.
        let narrowed = starting_lock(None, Some(&kept), &requiring("< 1.1.0")).unwrap();
        let pins = locked(&narrowed).unwrap();
        assert!(!pins.contains_key("example.com/a/b"));
        assert_eq!(pins["example.com/a/c"].version, "3.0.0", "the other provider does not move");
        assert_eq!(starting_lock(None, None, &requiring("")), None);
    }

    #[test]
    fn a_tree_lock_is_completed_by_the_kept_one_only_when_it_agrees() {
        let tree = lock(&[("example.com/a/b", "1.0.0", &["zh:z"])]);
        let completed = lock(&[("example.com/a/b", "1.0.0", &["h1:h", "zh:z"])]);
        let other = lock(&[("example.com/a/b", "1.1.0", &["h1:h", "zh:z"])]);
        let r = requiring("");
        assert_eq!(starting_lock(Some(&tree), Some(&completed), &r).as_deref(), Some(completed.as_str()));
        assert_eq!(starting_lock(Some(&tree), Some(&other), &r).as_deref(), Some(tree.as_str()));
        assert_eq!(starting_lock(Some(&tree), None, &r).as_deref(), Some(tree.as_str()));
    }

    #[test]
    fn h1_is_terraforms() {
        // The value Go's dirhash.Hash1 (Terraform's `h1:`) gives for these two files.
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("terraform-provider-x_v1.0.0"), "#!/bin/sh\necho provider\n").unwrap();
        fs_err::create_dir(dir.path().join("docs")).unwrap();
        fs_err::write(dir.path().join("docs/README.md"), "docs").unwrap();
        assert_eq!(h1(dir.path()).unwrap(), "h1:u+M5JLDAGvJQxOAPtczIJManre46UDUpbKb7SZcbY0M=");
    }
}

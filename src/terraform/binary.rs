//! Finding the Terraform (or `OpenTofu`) binary and its version.

use std::path::{Path, PathBuf};
use std::process::Command;

use thiserror::Error;

/// The oldest Terraform Stamp supports (for `terraform_data` and the `-json` UI stream).
pub const MIN_VERSION: (u64, u64) = (1, 5);

/// How to get a Terraform when none is found.
pub const INSTALL_HINT: &str = "install Terraform (>= 1.5) or OpenTofu and put it on PATH, pass `--terraform PATH` or set `STAMP_TERRAFORM`; in this repository `scripts/install-terraform.sh` installs a pinned one into `.tools/bin`";

#[derive(Debug, Error)]
pub enum BinaryError {
    #[error("no `terraform` or `tofu` found on PATH")]
    NotFound,
    #[error("`{0}` does not exist or is not executable")]
    NotExecutable(PathBuf),
    #[error("cannot read the version of `{path}`: {reason}")]
    Version { path: PathBuf, reason: String },
}

/// A Terraform-compatible binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terraform {
    pub path: PathBuf,
}

impl Terraform {
    /// `explicit` (from `--terraform` or `STAMP_TERRAFORM`), else `terraform`, else `tofu` on PATH.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, BinaryError> {
        if let Some(path) = explicit {
            let found = if path.components().count() > 1 { Ok(path.to_path_buf()) } else { which::which(path) };
            return match found {
                Ok(path) if is_executable(&path) => Ok(Self { path }),
                _ => Err(BinaryError::NotExecutable(path.to_path_buf())),
            };
        }
        ["terraform", "tofu"]
            .iter()
            .find_map(|name| which::which(name).ok())
            .map(|path| Self { path })
            .ok_or(BinaryError::NotFound)
    }

    /// `terraform version -json`.
    pub fn version(&self) -> Result<Version, BinaryError> {
        let error = |reason: String| BinaryError::Version { path: self.path.clone(), reason };
        let out = Command::new(&self.path)
            .args(["version", "-json"])
            .env("CHECKPOINT_DISABLE", "1")
            .output()
            .map_err(|e| error(e.to_string()))?;
        if !out.status.success() {
            return Err(error(format!("exit code {}", out.status.code().unwrap_or(-1))));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| error(format!("unexpected output: {e}")))?;
        let text = json
            .get("terraform_version")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| error("no `terraform_version` in its output".into()))?
            .to_string();
        let name = self.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        Ok(Version { flavor: if name.contains("tofu") { "OpenTofu" } else { "Terraform" }, text })
    }
}

/// A binary's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub flavor: &'static str,
    pub text: String,
}

impl Version {
    pub fn is_supported(&self) -> bool {
        let mut parts = self.text.split(['.', '-']).map(|p| p.parse::<u64>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        (major, minor) >= MIN_VERSION
    }
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_versions() {
        let v = |text: &str| Version { flavor: "Terraform", text: text.into() };
        assert!(v("1.15.5").is_supported());
        assert!(v("1.5.0").is_supported());
        assert!(v("2.0.0-alpha").is_supported());
        assert!(!v("1.4.7").is_supported());
        assert!(!v("0.15.5").is_supported());
    }

    #[test]
    fn explicit_missing_binary() {
        let err = Terraform::locate(Some(Path::new("/nonexistent/terraform"))).unwrap_err();
        assert!(matches!(err, BinaryError::NotExecutable(_)));
    }
}

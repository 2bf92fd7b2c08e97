//! Artifact reports: what `stamp build` wrote and what `stamp verify` checked, as text.

use std::fmt::Write as _;
use std::path::Path;

use crate::artifact::Manifest;
use crate::ops::build::Built;

/// Each artifact written, with its digest.
pub fn built_text(built: &[Built]) -> String {
    let mut text = String::new();
    for b in built {
        let _ = writeln!(text, "{}  {}", b.path.display(), b.digest);
    }
    text
}

/// A verified artifact: its account, version, file count and digest.
pub fn verified_text(artifact: &Path, manifest: &Manifest) -> String {
    format!(
        "ok: `{}` is account `{}` version {} ({} files, digest {})\n",
        artifact.display(),
        manifest.account,
        manifest.environment_version,
        manifest.files.len(),
        manifest.digest
    )
}

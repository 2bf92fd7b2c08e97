//! The starter projects `stamp init` writes: the repository's example archetypes, blueprints
//! and accounts, built into the binary from the folders they live in (`build.rs`), so a new
//! project starts from exactly the examples this version of Stamp ships and tests.

/// A file built into the binary.
#[derive(Debug)]
pub struct EmbeddedFile {
    /// Path in the repository, with `/`: `blueprints/local-platform/main.tf.j2`.
    pub path: &'static str,
    /// The file is executable in the repository (a script run directly).
    pub executable: bool,
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/starter_files.rs"));

/// An example archetype a project can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    /// Offline: Terraform's built-in `terraform_data` on the local disk; plans and applies
    /// with no cloud account.
    LocalPlatform,
    /// AWS: VPC, private DNS zone, ECS or EKS cluster, RDS databases.
    ServicePlatform,
    /// AWS: S3 data lake with KMS, Glue, Athena or Redshift Serverless.
    DataEngineering,
}

impl Example {
    pub const ALL: [Self; 3] = [Self::LocalPlatform, Self::ServicePlatform, Self::DataEngineering];

    /// The archetype's name, which is also its blueprint's.
    pub fn name(self) -> &'static str {
        match self {
            Self::LocalPlatform => "local-platform",
            Self::ServicePlatform => "service-platform",
            Self::DataEngineering => "data-engineering",
        }
    }

    /// The example account a project starts with (a file of `fixtures/accounts/`).
    pub fn account(self) -> &'static str {
        match self {
            Self::LocalPlatform => "local-staging",
            Self::ServicePlatform => "staging",
            Self::DataEngineering => "data-dev",
        }
    }

    /// Runs with no cloud account: state on the local disk, plan and apply work offline.
    pub fn offline(self) -> bool {
        self == Self::LocalPlatform
    }

    /// The archetype's and the blueprint's files, paths as in the repository.
    pub fn files(self) -> impl Iterator<Item = &'static EmbeddedFile> {
        let archetype = format!("archetypes/{}/", self.name());
        let blueprint = format!("blueprints/{}/", self.name());
        FILES.iter().filter(move |f| f.path.starts_with(&archetype) || f.path.starts_with(&blueprint))
    }

    /// The example account's file.
    pub fn account_file(self) -> Option<&'static EmbeddedFile> {
        let path = format!("fixtures/accounts/{}.yaml", self.account());
        FILES.iter().find(|f| f.path == path)
    }

    /// The archetype's JSON Schema, as text.
    pub fn schema(self) -> Option<&'static [u8]> {
        let path = format!("archetypes/{}/schema.json", self.name());
        FILES.iter().find(|f| f.path == path).map(|f| f.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_built_in_whole() {
        for example in Example::ALL {
            let paths: Vec<&str> = example.files().map(|f| f.path).collect();
            let name = example.name();
            for needed in ["archetype.yaml", "schema.json"] {
                assert!(paths.contains(&format!("archetypes/{name}/{needed}").as_str()), "{name}: {paths:?}");
            }
            assert!(paths.iter().any(|p| p.starts_with(&format!("blueprints/{name}/scripts/"))), "{name}: {paths:?}");
            assert!(example.account_file().is_some(), "{name} has no account");
            assert!(example.schema().is_some(), "{name} has no schema");
            // The blueprint copied is the one the archetype names.
            let archetype = example.files().find(|f| f.path.ends_with("/archetype.yaml")).unwrap();
            let text = String::from_utf8_lossy(archetype.bytes);
            assert!(text.lines().any(|l| l.trim() == format!("blueprint: {name}")), "{name}: {text}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn built_in_files_are_the_repository_files_with_their_modes() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(FILES.iter().any(|f| f.executable), "no script is executable");
        for file in FILES {
            let path = root.join(file.path);
            assert_eq!(fs_err::read(&path).unwrap(), file.bytes, "{}", file.path);
            let mode = fs_err::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o111 != 0, file.executable, "{}", file.path);
        }
    }
}

//! The provider cache with a real provider (`example.com/stamp/stampecho`, written with a
//! Python provider framework and packaged by `scripts/install-test-provider.sh` into a
//! filesystem mirror that stands in for the registry, since none is reachable here) and the
//! real Terraform: one install per run, linked into every account, parallel `init`s, the lock
//! file kept per account, checksums verified, credentials never written to disk.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Run, repo, terraform};

/// The stand-in registry: `STAMP_TEST_PROVIDER_ORIGIN`, else the one `make test` installs.
fn origin() -> PathBuf {
    if let Some(path) = std::env::var_os("STAMP_TEST_PROVIDER_ORIGIN") {
        return PathBuf::from(path);
    }
    let local = repo().join(".tools/provider/origin");
    assert!(local.is_dir(), "no test provider: run `make test` (or `scripts/install-test-provider.sh`)");
    local
}

const PACKAGE: &str = "example.com/stamp/stampecho/1.0.0";

/// A project of `accounts` accounts whose blueprint uses the test provider, a user CLI
/// configuration that installs from the stand-in registry (with a registry token), and a
/// provider cache of its own.
struct Fleet {
    dir: tempfile::TempDir,
    cache: PathBuf,
}

impl Fleet {
    fn new(accounts: usize, cache: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let write = |relative: &str, text: &str| {
            let path = dir.path().join(relative);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, text).unwrap();
        };
        write(
            "stamp.yaml",
            "archetypes: archetypes\nblueprints: blueprints\naccounts: accounts\nstate:\n  local:\n    dir: .stamp/state\n",
        );
        write(
            "archetypes/echo/archetype.yaml",
            "description: Echo (a real provider from a filesystem mirror)\nblueprint: echo\nprovider: none\nbackend: local\ndefaults:\n  message: hello\n",
        );
        write(
            "archetypes/echo/schema.json",
            r#"{"type": "object", "additionalProperties": false, "required": ["archetype", "environment", "message"],
                "properties": {"archetype": {"const": "echo"}, "name": {"type": "string"}, "environment": {"type": "string"},
                               "message": {"type": "string"}}}"#,
        );
        write(
            "blueprints/echo/main.tf.j2",
            "terraform {\n  required_providers {\n    stampecho = {\n      source  = \"example.com/stamp/stampecho\"\n      version = \">= 1.0.0\"\n    }\n  }\n}\n\n\
             resource \"stampecho_value\" \"message\" {\n  input = \"{{ config.message }}\"\n}\n\n\
             output \"echo\" {\n  value = stampecho_value.message.output\n}\n",
        );
        for n in 0..accounts {
            write(
                &format!("accounts/e{n}.yaml"),
                &format!("archetype: echo\nenvironment: env{n}\nmessage: hello {n}\n"),
            );
        }
        write(
            "terraformrc",
            &format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n\n\
                 credentials \"app.terraform.io\" {{\n  token = \"secret-registry-token\"\n}}\n",
                origin().display()
            ),
        );
        Self { dir, cache: cache.to_path_buf() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn stamp<const N: usize>(&self, args: [&str; N]) -> Run {
        Run::new(self.path())
            .env("STAMP_TERRAFORM", terraform())
            .env("TF_CLI_CONFIG_FILE", self.path().join("terraformrc"))
            .env("STAMP_PROVIDER_CACHE", &self.cache)
            .args(["--quiet"])
            .args(args)
    }

    fn data(&self, account: &str) -> PathBuf {
        self.path().join(".stamp/data").join(account)
    }

    /// How many times a provider was downloaded into the cache, by the accounts' logs.
    fn installs(&self) -> usize {
        let logs = self.path().join(".stamp/logs");
        fs_err::read_dir(&logs)
            .unwrap()
            .map(|e| fs_err::read_to_string(e.unwrap().path()).unwrap())
            .map(|log| log.matches("provider cache: downloaded").count())
            .sum()
    }
}

fn installed(data: &Path) -> PathBuf {
    data.join("providers").join(PACKAGE).join("linux_amd64")
}

#[test]
fn one_install_per_run_linked_into_every_account() {
    let cache = tempfile::tempdir().unwrap();
    let fleet = Fleet::new(8, cache.path());
    let out = fleet.stamp(["plan", "--all", "-j", "8"]).run();
    assert_eq!(out.code, 2, "changes to apply:\n{}{}", out.stdout, out.stderr);

    let mirrored = cache.path().join("mirror").join(PACKAGE).join("linux_amd64");
    assert!(mirrored.join("terraform-provider-stampecho_v1.0.0").is_file(), "the provider is in the cache");
    assert_eq!(fleet.installs(), 1, "installed once for 8 accounts");
    for n in 0..8 {
        let data = fleet.data(&format!("e{n}"));
        let link = installed(&data);
        assert!(link.is_symlink(), "e{n} links the cached provider");
        assert_eq!(fs_err::canonicalize(&link).unwrap(), fs_err::canonicalize(&mirrored).unwrap());
        let kept: Vec<_> = fs_err::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("lock-"))
            .collect();
        assert_eq!(kept.len(), 1, "e{n} keeps its lock file");
        assert!(fs_err::read_to_string(&kept[0]).unwrap().contains("h1:"), "with checksums");
        let config = data.join("stamp.terraformrc");
        let text = fs_err::read_to_string(&config).unwrap();
        assert!(!text.contains("secret-registry-token"), "no token on disk:\n{text}");
        assert!(text.contains("filesystem_mirror"), "{text}");
        assert_eq!(fs_err::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(
        fs_err::read_dir(cache.path()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".install-")),
        "no install folder left behind"
    );

    // The next run needs no registry at all: the stand-in registry is gone.
    let moved = tempfile::tempdir().unwrap();
    let gone = moved.path().join("origin");
    let config = fleet.path().join("terraformrc");
    fs_err::write(
        &config,
        format!("provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n", gone.display()),
    )
    .unwrap();
    for n in 0..8 {
        fs_err::remove_dir_all(fleet.data(&format!("e{n}")).join("providers")).unwrap();
    }
    let out = fleet.stamp(["plan", "--all", "-j", "8"]).run();
    assert_eq!(out.code, 2, "planned from the cache alone:\n{}{}", out.stdout, out.stderr);
    assert_eq!(fleet.installs(), 1, "nothing installed again");

    // The cached provider really runs.
    fleet.stamp(["apply", "e3", "--auto-approve"]).run().success();
    let state = fs_err::read_to_string(fleet.path().join(".stamp/state/e3/terraform.tfstate")).unwrap();
    assert!(state.contains("\"hello 3\""), "the provider echoed its input:\n{state}");
}

#[test]
fn a_changed_provider_in_the_cache_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    let fleet = Fleet::new(1, cache.path());
    assert_eq!(fleet.stamp(["plan", "e0"]).run().code, 2);
    let binary = cache.path().join("mirror").join(PACKAGE).join("linux_amd64/terraform-provider-stampecho_v1.0.0");
    let mut text = fs_err::read_to_string(&binary).unwrap();
    text.push_str("\n# tampered\n");
    fs_err::write(&binary, text).unwrap();
    fs_err::remove_dir_all(fleet.data("e0").join("providers")).unwrap();
    let out = fleet.stamp(["plan", "e0"]).run();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let log = fs_err::read_to_string(fleet.path().join(".stamp/logs/e0.log")).unwrap();
    assert!(log.contains("checksum") || log.contains("doesn't match"), "Terraform names the checksum:\n{log}");
}

#[test]
fn without_the_cache_every_account_has_its_own_copy() {
    let fleet = Fleet::new(2, Path::new("unused"));
    let out = fleet.stamp(["plan", "--all"]).env("STAMP_PROVIDER_CACHE", "off").run();
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    for n in 0..2 {
        let data = fleet.data(&format!("e{n}"));
        let copy = installed(&data);
        assert!(copy.is_dir() && !copy.is_symlink(), "e{n} has its own copy");
        assert!(!data.join("stamp.terraformrc").exists());
    }
    assert_eq!(fleet.installs(), 0);
}

#[test]
fn two_runs_filling_one_cache_at_once_agree() {
    let cache = tempfile::tempdir().unwrap();
    let fleets = [Fleet::new(4, cache.path()), Fleet::new(4, cache.path())];
    let children: Vec<_> = fleets.iter().map(|f| f.stamp(["plan", "--all", "-j", "4"]).spawn()).collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(
        fleets.iter().map(Fleet::installs).sum::<usize>(),
        1,
        "one of the two downloaded, the other waited and linked it"
    );
    let versions = fs_err::read_dir(cache.path().join("mirror/example.com/stamp/stampecho")).unwrap().count();
    assert_eq!(versions, 1);
}

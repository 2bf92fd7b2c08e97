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

    /// How many times providers were installed (downloaded) for the cache, by the accounts' logs.
    fn installs(&self) -> usize {
        let logs = self.path().join(".stamp/logs");
        fs_err::read_dir(&logs)
            .unwrap()
            .map(|e| fs_err::read_to_string(e.unwrap().path()).unwrap())
            .map(|log| log.matches("provider cache: installing").count())
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
        let kept = fs_err::read_to_string(data.join("terraform.lock.hcl")).unwrap();
        assert!(kept.contains("h1:"), "e{n} keeps its lock file, with checksums");
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

/// Appends a line to the cached provider (a tampered or damaged copy).
fn tamper(cache: &Path) -> PathBuf {
    let binary = cache.join("mirror").join(PACKAGE).join("linux_amd64/terraform-provider-stampecho_v1.0.0");
    let mut text = fs_err::read_to_string(&binary).unwrap();
    text.push_str("\nopen(__import__('os').environ['TAMPERED'], 'w').write('ran')\n");
    fs_err::write(&binary, text).unwrap();
    binary
}

#[test]
fn a_changed_provider_in_the_cache_is_never_run_and_is_replaced() {
    let cache = tempfile::tempdir().unwrap();
    let marker = cache.path().join("tampered-provider-ran");
    let fleet = Fleet::new(2, cache.path());
    assert_eq!(fleet.stamp(["plan", "e0"]).run().code, 2);
    let binary = tamper(cache.path());

    // An account whose lock file names the provider: the changed copy is not served, the
    // original is installed again in its place.
    fs_err::remove_dir_all(fleet.data("e0").join("providers")).unwrap();
    let out = fleet.stamp(["plan", "e0"]).env("TAMPERED", &marker).run();
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(!marker.exists(), "the changed provider never ran");
    assert!(!fs_err::read_to_string(&binary).unwrap().contains("TAMPERED"), "the cache holds the original again");
    let log = fs_err::read_to_string(fleet.path().join(".stamp/logs/e0.log")).unwrap();
    assert!(log.contains("replaced example.com/stamp/stampecho 1.0.0"), "{log}");

    // An account with no lock file yet: the mirror is not trusted to choose its provider either.
    tamper(cache.path());
    let out = fleet.stamp(["plan", "e1"]).env("TAMPERED", &marker).run();
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(!marker.exists(), "the changed provider never ran");
    assert!(!fs_err::read_to_string(&binary).unwrap().contains("TAMPERED"), "the cache holds the original again");
    let lock = fs_err::read_to_string(fleet.data("e1").join("terraform.lock.hcl")).unwrap();
    let kept = fs_err::read_to_string(fleet.data("e0").join("terraform.lock.hcl")).unwrap();
    assert_eq!(
        lock.lines().find(|l| l.contains("h1:")),
        kept.lines().find(|l| l.contains("h1:")),
        "the original's checksum"
    );

    // Changed again, with the registry gone: the plan fails rather than run it.
    tamper(cache.path());
    fs_err::write(fleet.path().join("terraformrc"), "provider_installation {\n  direct {}\n}\n").unwrap();
    fs_err::remove_dir_all(fleet.data("e0").join("providers")).unwrap();
    let out = fleet.stamp(["plan", "e0"]).env("TAMPERED", &marker).run();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(!marker.exists(), "the changed provider never ran");
}

#[test]
fn a_lock_file_from_another_platform_is_completed_once() {
    // A lock file committed from another machine: only the package's `zh:` checksum (as the
    // registry publishes it), no `h1:` for this platform.
    let cache = tempfile::tempdir().unwrap();
    let fleet = Fleet::new(3, cache.path());
    let zip =
        fs_err::read(origin().join("example.com/stamp/stampecho/terraform-provider-stampecho_1.0.0_linux_amd64.zip"))
            .unwrap();
    let zh = {
        use sha2::Digest as _;
        format!("{:x}", sha2::Sha256::digest(&zip))
    };
    let lock = format!(
        "provider \"example.com/stamp/stampecho\" {{\n  version     = \"1.0.0\"\n  constraints = \">= 1.0.0\"\n  hashes = [\n    \"zh:{zh}\",\n  ]\n}}\n"
    );
    fs_err::write(fleet.path().join("blueprints/echo/.terraform.lock.hcl"), &lock).unwrap();
    let out = fleet.stamp(["plan", "--all", "-j", "3"]).run();
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(fleet.installs(), 1, "one download for the three accounts");
    for n in 0..3 {
        assert!(installed(&fleet.data(&format!("e{n}"))).is_symlink(), "e{n} uses the cache");
        let kept = fs_err::read_to_string(fleet.data(&format!("e{n}")).join("terraform.lock.hcl")).unwrap();
        assert!(kept.contains(&format!("zh:{zh}")) && kept.contains("h1:"), "completed: {kept}");
    }
    // The next run starts from the completed lock files: nothing downloaded.
    let out = fleet.stamp(["plan", "--all", "-j", "3"]).run();
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(fleet.installs(), 1);
}

#[test]
fn the_users_plugin_cache_is_not_used_and_unknown_settings_turn_the_cache_off() {
    let cache = tempfile::tempdir().unwrap();
    let plugin_cache = tempfile::tempdir().unwrap();
    let fleet = Fleet::new(2, cache.path());
    let out = fleet.stamp(["plan", "--all"]).env("TF_PLUGIN_CACHE_DIR", plugin_cache.path()).run();
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(fs_err::read_dir(plugin_cache.path()).unwrap().count(), 0, "Terraform's plugin cache untouched");

    // A setting Stamp does not understand: the cache is off for the run, with one warning.
    let config = fleet.path().join("terraformrc");
    let text = fs_err::read_to_string(&config).unwrap();
    fs_err::write(&config, format!("{text}\nsome_future_setting = true\n")).unwrap();
    for n in 0..2 {
        fs_err::remove_dir_all(fleet.data(&format!("e{n}"))).unwrap();
    }
    let out = fleet.stamp(["plan", "--all"]).run();
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.matches("provider cache is off for this run").count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("some_future_setting"), "{}", out.stderr);
    assert!(!installed(&fleet.data("e0")).is_symlink(), "installed as Terraform alone would");
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
    // Neither has a lock file yet, so each run installs once (the mirror serves only what a lock
    // file vouches for) and the second keeps the copy it finds there.
    assert!(fleets.iter().all(|f| f.installs() == 1), "one install per run");
    let versions = fs_err::read_dir(cache.path().join("mirror/example.com/stamp/stampecho")).unwrap().count();
    assert_eq!(versions, 1);
}

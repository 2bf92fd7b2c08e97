//! One provider download per run, not one per account: a filesystem mirror that Stamp fills
//! and every account's `terraform init` installs from.
//!
//! Each account runs with its own `TF_DATA_DIR`, so without this every account downloads and
//! unpacks its own copy of each provider. Terraform's plugin cache would share them, but it is
//! documented as unsafe for concurrent `init`. So Stamp keeps a mirror (unpacked layout,
//! `HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/`) and, per account:
//!
//! 1. Under a lock (one per process, and a file lock for other processes) it finds which
//!    providers the mirror can serve: those whose folder has an `h1:` checksum (computed once
//!    per run) that the account's lock file names. The mirror is never trusted for anything
//!    else: a provider the lock file does not vouch for is installed from the user's own
//!    sources (registry, mirrors), checked by Terraform against the lock file and the
//!    registry's signatures, into a temporary data folder, then moved into the mirror with
//!    one rename (replacing a damaged or different copy). Accounts with the same requirements
//!    and the same starting lock file share that install within the run.
//! 2. Without the lock it runs its own `init` with a CLI configuration that installs those
//!    providers from the mirror only (Terraform links them: nothing is copied) and the others
//!    as the user's configuration says. Only reads touch the mirror then, so parallel `init`s
//!    never collide, and Terraform checks each provider against the lock file again.

mod cli_config;
mod lock;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use hcl::{Body, Expression, ObjectKey, Structure};

pub use self::cli_config::UserConfig;
pub use self::lock::{LOCK_FILE, starting_lock};
use self::lock::{Pinned, h1, locked};
use super::process::{Invocation, Log};

/// The most of a Terraform file or lock file read here: a plain file (a hook may leave
/// anything in the work folder), whatever size it claims.
const MAX_TEXT: u64 = 16 << 20;

/// The registry a provider source without a host comes from.
const DEFAULT_HOST: &str = "registry.terraform.io";

/// What an account's root module asks for: normalised provider sources (`HOST/NAMESPACE/TYPE`)
/// with their version constraints. A file or entry that cannot be read adds nothing: what it
/// needs is then installed by `init` from the user's own sources, as without the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    pub providers: BTreeMap<String, String>,
}

impl Requirements {
    /// The `required_providers` of every `*.tf` file directly in `dir`.
    pub fn of(dir: &Path) -> Self {
        let mut out = Self::default();
        let Ok(entries) = fs_err::read_dir(dir) else { return out };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tf"))
            .collect();
        files.sort();
        for file in files {
            if let Some(body) = crate::fsio::plain_text(&file, MAX_TEXT).and_then(|text| hcl::parse(&text).ok()) {
                out.add(&body);
            }
        }
        out
    }

    fn add(&mut self, body: &Body) {
        let terraform_blocks = body.0.iter().filter_map(Structure::as_block).filter(|b| b.identifier() == "terraform");
        let required = terraform_blocks
            .flat_map(|b| b.body().0.iter().filter_map(Structure::as_block))
            .filter(|b| b.identifier() == "required_providers");
        for block in required {
            for attribute in block.body().0.iter().filter_map(Structure::as_attribute) {
                let local = attribute.key();
                let (source, version) = match attribute.expr() {
                    Expression::Object(object) => {
                        let field = |name: &str| {
                            object.iter().find_map(|(k, v)| match (k, v) {
                                (ObjectKey::Identifier(i), Expression::String(s)) if i.as_str() == name => {
                                    Some(s.clone())
                                }
                                (ObjectKey::Expression(Expression::String(key)), Expression::String(s))
                                    if key == name =>
                                {
                                    Some(s.clone())
                                }
                                _ => None,
                            })
                        };
                        (field("source").unwrap_or_else(|| local.to_string()), field("version").unwrap_or_default())
                    }
                    // The legacy form `aws = ">= 5.0"`.
                    Expression::String(version) => (local.to_string(), version.clone()),
                    _ => continue,
                };
                let entry = self.providers.entry(normalise(&source)).or_default();
                if !version.is_empty() {
                    if !entry.is_empty() {
                        entry.push_str(", ");
                    }
                    entry.push_str(&version);
                }
            }
        }
    }

    /// A short digest of the requirements: accounts with the same one resolve to the same
    /// providers, so one install serves them all.
    pub fn signature(&self) -> String {
        let mut text = String::new();
        for (source, version) in &self.providers {
            text.push_str(source);
            text.push('\t');
            text.push_str(version);
            text.push('\n');
        }
        crate::cache::content_digest(text.as_bytes()).chars().take(16).collect()
    }
}

/// `aws` → `registry.terraform.io/hashicorp/aws`, `hashicorp/aws` → the same; host names are
/// case-insensitive, so lower-cased.
pub fn normalise(source: &str) -> String {
    let parts: Vec<&str> = source.split('/').collect();
    match parts.as_slice() {
        [name] => format!("{DEFAULT_HOST}/hashicorp/{}", name.to_lowercase()),
        [namespace, name] => format!("{DEFAULT_HOST}/{}/{}", namespace.to_lowercase(), name.to_lowercase()),
        _ => source.to_lowercase(),
    }
}

/// Terraform's name for this machine's platform (`linux_amd64`), if it has one.
pub fn platform() -> Option<String> {
    let os = std::env::consts::OS;
    if !matches!(os, "linux" | "darwin" | "windows" | "freebsd" | "openbsd") {
        return None;
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        _ => return None,
    };
    Some(format!("{os}_{arch}"))
}

/// What an account's `init` needs to use the cache.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Environment for `terraform init` (`TF_CLI_CONFIG_FILE`, tokens, no plugin cache); empty
    /// when the cache is not used for this account.
    pub env: Vec<(String, String)>,
    /// Providers `init` takes from the mirror.
    pub from_mirror: Vec<String>,
    /// Why the cache is off for this account (once per run, for the user).
    pub warning: Option<String>,
}

/// Terraform's plugin cache is not safe for parallel `init`, and the mirror replaces it.
const NO_PLUGIN_CACHE: [(&str, &str); 2] =
    [("TF_PLUGIN_CACHE_DIR", ""), ("TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE", "")];

/// The mirror of one run (shared by every account of the process that uses the same folder).
#[derive(Debug)]
pub struct ProviderCache {
    root: PathBuf,
    platform: String,
    /// Lock files completed by this process's installs, by requirements and starting lock.
    installed: Mutex<HashMap<String, String>>,
    /// `h1:` of each mirror folder, computed once per run.
    checksums: Mutex<HashMap<PathBuf, Option<String>>>,
    warned: std::sync::Once,
}

/// Why the mirror could not serve an account.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("provider cache `{}`: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("installing the providers into the cache failed: {0}")]
    Install(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |e| CacheError::Io { path: path.to_path_buf(), reason: crate::diagnostics::io_reason(&e) }
}

impl ProviderCache {
    /// The cache at `root` for this process (one per folder, so accounts planned in parallel
    /// share its lock). `None` on a platform Terraform has no name for.
    pub fn shared(root: &Path) -> Option<Arc<Self>> {
        static CACHES: OnceLock<Mutex<HashMap<PathBuf, Arc<ProviderCache>>>> = OnceLock::new();
        let platform = platform()?;
        let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let mut caches = CACHES.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let cache = caches.entry(root.clone()).or_insert_with(|| {
            Arc::new(Self {
                root,
                platform,
                installed: Mutex::default(),
                checksums: Mutex::default(),
                warned: std::sync::Once::new(),
            })
        });
        Some(Arc::clone(cache))
    }

    /// The mirror Terraform installs from.
    pub fn mirror(&self) -> PathBuf {
        self.root.join("mirror")
    }

    /// Where a provider version for this platform sits in the mirror.
    fn slot(&self, source: &str, version: &str) -> PathBuf {
        self.mirror().join(source).join(version).join(&self.platform)
    }

    /// The `h1:` of a mirror folder, computed once per run (`None`: absent or unreadable).
    fn checksum(&self, slot: &Path) -> Option<String> {
        let mut known = self.checksums.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        known.entry(slot.to_path_buf()).or_insert_with(|| slot.is_dir().then(|| h1(slot).ok()).flatten()).clone()
    }

    /// The providers of `lock` the mirror holds exactly as the lock file names them.
    fn servable(&self, lock: &BTreeMap<String, Pinned>) -> BTreeSet<String> {
        lock.iter()
            .filter(|(source, pin)| {
                self.checksum(&self.slot(source, &pin.version)).is_some_and(|h| pin.hashes.contains(&h))
            })
            .map(|(source, _)| source.clone())
            .collect()
    }

    /// Makes sure the mirror holds what the root module in `work` needs (`requirements`), as its
    /// lock file names it (installing what it lacks once), then writes `config` (a CLI configuration for
    /// `init`) and says how to use it. `terraform` is the binary; `log` the account's log;
    /// `hold` the account's lock.
    pub fn prepare(
        &self,
        work: &Path,
        requirements: &Requirements,
        config: &Path,
        terraform: &Path,
        log: &Log,
        hold: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Prepared, CacheError> {
        let lock_path = work.join(LOCK_FILE);
        if requirements.providers.is_empty() && !lock_path.is_file() {
            return Ok(Prepared::default());
        }
        let user = match UserConfig::read(work) {
            Ok(user) => user,
            Err(reason) => {
                let warning = format!("the provider cache is off for this run: {reason}");
                log.line(&format!("# {warning}"));
                let mut first = None;
                self.warned.call_once(|| first = Some(warning));
                return Ok(Prepared { warning: first, ..Prepared::default() });
            }
        };
        let read_lock =
            || crate::fsio::plain_text(&lock_path, MAX_TEXT).and_then(|t| locked(&t).ok()).unwrap_or_default();
        // Accounts with the same requirements and the same starting lock file resolve to the
        // same providers: one install serves them all.
        let starting = crate::fsio::plain_text(&lock_path, MAX_TEXT).unwrap_or_default();
        let signature = format!(
            "{}-{}",
            requirements.signature(),
            crate::cache::content_digest(starting.as_bytes()).chars().take(16).collect::<String>()
        );
        let servable = {
            let mut installed = self.installed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _file_lock = self.lock_file(log)?;
            let wanted = |served: &BTreeSet<String>| requirements.providers.keys().all(|s| served.contains(s));
            let mut servable = self.servable(&read_lock());
            if !wanted(&servable)
                && let Some(text) = installed.get(&signature)
            {
                log.line("# provider cache: the lock file completed by this run for the same requirements");
                fs_err::write(&lock_path, text).map_err(io_error(&lock_path))?;
                servable = self.servable(&read_lock());
            }
            if !wanted(&servable) {
                self.install(work, &user, &servable, terraform, log, hold)?;
                servable = self.servable(&read_lock());
            }
            if let Some(text) = crate::fsio::plain_text(&lock_path, MAX_TEXT) {
                installed.entry(signature).or_insert(text);
            }
            servable
        };
        let from_mirror: Vec<String> = servable.into_iter().collect();
        let text = user.render(&self.mirror(), &from_mirror).map_err(CacheError::Install)?;
        crate::fsio::write_atomic_with(config, text.as_bytes(), crate::fsio::Mode::Private)
            .map_err(io_error(config))?;
        let mut env = vec![("TF_CLI_CONFIG_FILE".to_string(), config.display().to_string())];
        env.extend(NO_PLUGIN_CACHE.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())));
        env.extend(user.tokens.iter().cloned());
        Ok(Prepared { env, from_mirror, warning: None })
    }

    /// Held while the mirror is checked and filled: other Stamp processes wait.
    /// `log` learns when another process holds the lock (an install under way there).
    fn lock_file(&self, log: &Log) -> Result<fs_err::File, CacheError> {
        fs_err::create_dir_all(self.mirror()).map_err(io_error(&self.root))?;
        let path = self.root.join(".lock");
        let file = crate::fsio::open_lock(&path).map_err(io_error(&path))?;
        match file.file().try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                log.line(&format!(
                    "# provider cache: waiting for another Stamp run installing into {}",
                    self.mirror().display()
                ));
                file.file().lock().map_err(io_error(&path))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&path)(e)),
        }
        // Installs happen only under this lock: an install folder found now was left by a run
        // that was killed.
        if let Ok(entries) = fs_err::read_dir(&self.root) {
            for entry in entries.filter_map(Result::ok) {
                if is_install_folder(&entry) {
                    let _ = fs_err::remove_dir_all(entry.path());
                }
            }
        }
        Ok(file)
    }

    /// Runs `terraform init -backend=false` in `work` into a temporary data folder beside the
    /// mirror, with the mirror serving only what the lock file already vouches for
    /// (`servable`) and everything else from the user's own sources, then moves each provider
    /// it installed into the mirror with one rename.
    fn install(
        &self,
        work: &Path,
        user: &UserConfig,
        servable: &BTreeSet<String>,
        terraform: &Path,
        log: &Log,
        hold: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<(), CacheError> {
        let staging = tempfile::Builder::new()
            .prefix(INSTALL_PREFIX)
            .rand_bytes(INSTALL_SUFFIX)
            .tempdir_in(&self.root)
            .map_err(io_error(&self.root))?;
        let sign = staging.path().join(INSTALL_SIGN);
        fs_err::write(&sign, "a provider install of Stamp's: removed when done, or by the next install after a kill\n")
            .map_err(io_error(&sign))?;
        log.line(&format!(
            "# provider cache: installing the providers of this root module into {}",
            self.mirror().display()
        ));
        let served: Vec<String> = servable.iter().cloned().collect();
        let text = user.render(&self.mirror(), &served).map_err(CacheError::Install)?;
        let config = staging.path().join("terraformrc");
        fs_err::write(&config, text).map_err(io_error(&config))?;
        let mut env = vec![
            ("TF_CLI_CONFIG_FILE".to_string(), config.display().to_string()),
            ("TF_DATA_DIR".to_string(), staging.path().join("data").display().to_string()),
            ("TF_IN_AUTOMATION".to_string(), "1".to_string()),
            ("TF_INPUT".to_string(), "0".to_string()),
            ("CHECKPOINT_DISABLE".to_string(), "1".to_string()),
        ];
        env.extend(NO_PLUGIN_CACHE.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())));
        env.extend(user.tokens.iter().cloned());
        let invocation = Invocation {
            program: terraform,
            args: ["init", "-backend=false", "-input=false", "-no-color"].map(String::from).to_vec(),
            cwd: work,
            env,
            timeout: None,
            grace: super::process::TERRAFORM_GRACE,
            log_stdout: true,
            log_stderr: true,
            max_output: super::process::MAX_OUTPUT,
            hold,
        };
        let finished = invocation.run(log).map_err(|e| CacheError::Install(e.to_string()))?;
        if !finished.success() {
            return Err(CacheError::Install(finished.tail(12)));
        }
        let providers = staging.path().join("data").join("providers");
        let pins =
            crate::fsio::plain_text(&work.join(LOCK_FILE), MAX_TEXT).and_then(|t| locked(&t).ok()).unwrap_or_default();
        for (source, pin) in pins.iter().filter(|(source, _)| !servable.contains(*source)) {
            let installed = providers.join(source).join(&pin.version).join(&self.platform);
            if !installed.exists() {
                continue;
            }
            // Terraform links what it took from another mirror: copy that in whole first.
            let real = fs_err::canonicalize(&installed).map_err(io_error(&installed))?;
            let ready = if real == installed {
                installed
            } else {
                let copy = staging.path().join("copy").join(source).join(&pin.version);
                copy_dir(&real, &copy).map_err(io_error(&copy))?;
                copy
            };
            sync_files(&ready).map_err(io_error(&ready))?;
            let checksum = h1(&ready).map_err(io_error(&ready))?;
            if !pin.hashes.contains(&checksum) {
                log.line(&format!(
                    "# provider cache: {source} {} does not match its lock file: not cached",
                    pin.version
                ));
                continue;
            }
            let target = self.slot(source, &pin.version);
            let parent = target.parent().unwrap_or(&self.root);
            fs_err::create_dir_all(parent).map_err(io_error(parent))?;
            if target.exists() {
                if h1(&target).ok().as_ref() == Some(&checksum) {
                    // The mirror had it already (the lock file did not name it yet): the same.
                    self.checksums
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(target, Some(checksum));
                    continue;
                }
                // A damaged or different copy: set aside (removed with the staging folder).
                let aside = staging.path().join("replaced");
                fs_err::rename(&target, &aside).map_err(io_error(&target))?;
                log.line(&format!("# provider cache: replaced {source} {}, which did not match", pin.version));
            }
            fs_err::rename(&ready, &target).map_err(io_error(&target))?;
            crate::fsio::sync_dir(parent).map_err(io_error(parent))?;
            self.checksums.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(target, Some(checksum));
            log.line(&format!("# provider cache: added {source} {}", pin.version));
        }
        Ok(())
    }
}

/// Copies the folder `from` (regular files, folders and links, with their modes) to `to`.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.map_err(std::io::Error::other)?;
        let relative = entry.path().strip_prefix(from).map_err(std::io::Error::other)?;
        let target = to.join(relative);
        let kind = entry.file_type();
        if kind.is_dir() {
            fs_err::create_dir_all(&target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs_err::read_link(entry.path())?, &target)?;
        } else {
            fs_err::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Syncs every file and folder under `dir`, so a rename that publishes it publishes whole files.
fn sync_files(dir: &Path) -> std::io::Result<()> {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_file() || entry.file_type().is_dir() {
            fs_err::File::open(entry.path())?.file().sync_all()?;
        }
    }
    Ok(())
}

/// Whether `entry`, in the cache's folder, is an install folder a killed run left: a folder
/// (not a link) named as [`ProviderCache::install`] names them, empty or holding its
/// [`INSTALL_SIGN`] and nothing but what an install puts there. The cache may be set to a
/// folder that holds other things (the project, a home folder): nothing else there is ever
/// removed.
fn is_install_folder(entry: &fs_err::DirEntry) -> bool {
    const MADE: &[&str] = &[INSTALL_SIGN, "terraformrc", "data", "copy", "replaced"];
    let name = entry.file_name();
    let shaped = name
        .to_str()
        .and_then(|n| n.strip_prefix(INSTALL_PREFIX))
        .is_some_and(|suffix| suffix.len() == INSTALL_SUFFIX && suffix.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !shaped || !entry.file_type().is_ok_and(|t| t.is_dir()) {
        return false;
    }
    let Ok(inside) = fs_err::read_dir(entry.path()) else { return false };
    let names: Option<Vec<String>> = inside.map(|e| e.ok()?.file_name().into_string().ok()).collect();
    names.is_some_and(|names| {
        names.is_empty()
            || (names.iter().any(|n| n == INSTALL_SIGN) && names.iter().all(|n| MADE.contains(&n.as_str())))
    })
}

/// The file every install folder holds from its start, so that a sweep takes no other.
const INSTALL_SIGN: &str = ".stamp-install";

/// How install folders are named: this prefix, then [`INSTALL_SUFFIX`] random letters and digits.
const INSTALL_PREFIX: &str = ".install-";
const INSTALL_SUFFIX: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache may be set to a folder that holds other things: taking its lock sweeps only the
    /// install folders killed runs left, never a file or folder of the user's named like one.
    #[test]
    fn only_install_folders_killed_runs_left_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let left = root.join(".install-a1B2c3");
        fs_err::create_dir_all(left.join("data/providers")).unwrap();
        fs_err::write(left.join("terraformrc"), "").unwrap();
        fs_err::write(left.join(INSTALL_SIGN), "").unwrap();
        let empty = root.join(".install-zzzzzz");
        fs_err::create_dir_all(&empty).unwrap();
        let mine = [".install-notes", ".install-x1y2z3.bak", ".install-q1w2e3", ".install-r1t2y3"];
        fs_err::write(root.join(mine[0]), "mine").unwrap();
        fs_err::create_dir_all(root.join(mine[1])).unwrap();
        fs_err::create_dir_all(root.join(mine[2])).unwrap();
        fs_err::write(root.join(mine[2]).join("todo.md"), "mine").unwrap();
        // Named and filled like an install, but not one of Stamp's (no sign).
        fs_err::create_dir_all(root.join(mine[3]).join("data")).unwrap();
        fs_err::write(root.join(mine[3]).join("data/mine.txt"), "mine").unwrap();
        let cache = ProviderCache::shared(root).unwrap();
        let log = Log::open(&root.join("log")).unwrap();
        drop(cache.lock_file(&log).unwrap());
        assert!(!left.exists() && !empty.exists(), "what killed installs left is swept");
        for name in mine {
            assert!(root.join(name).exists(), "{name} is the user's");
        }
    }

    #[test]
    fn sources_are_normalised() {
        assert_eq!(normalise("aws"), "registry.terraform.io/hashicorp/aws");
        assert_eq!(normalise("Hashicorp/AWS"), "registry.terraform.io/hashicorp/aws");
        assert_eq!(normalise("example.com/stamp/echo"), "example.com/stamp/echo");
    }

    #[test]
    fn requirements_are_read() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join("a.tf"),
            "terraform {\n  required_providers {\n    aws = {\n      source  = \"hashicorp/aws\"\n      version = \"~> 6.0\"\n    }\n    null = \">= 3\"\n  }\n}\n",
        )
        .unwrap();
        fs_err::write(dir.path().join("b.tf"), "resource \"x\" {").unwrap();
        let found = Requirements::of(dir.path());
        assert_eq!(found.providers["registry.terraform.io/hashicorp/aws"], "~> 6.0");
        assert_eq!(found.providers["registry.terraform.io/hashicorp/null"], ">= 3");
        assert_eq!(found.providers.len(), 2, "b.tf, not HCL, adds nothing");
    }
}

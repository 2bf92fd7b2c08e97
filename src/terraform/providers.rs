//! One provider download per run, not one per account: a filesystem mirror that Stamp fills
//! and every account's `terraform init` installs from.
//!
//! Each account runs with its own `TF_DATA_DIR`, so without this every account downloads and
//! unpacks its own copy of each provider. Terraform's plugin cache would share them, but it is
//! documented as unsafe for concurrent `init`. So Stamp keeps a mirror (unpacked layout,
//! `HOST/NAMESPACE/TYPE/VERSION/OS_ARCH/`) and, per account:
//!
//! 1. under a lock (one per process, and a file lock for other processes), checks that every
//!    provider the account needs is in the mirror at the version its dependency lock file
//!    names. If not, it runs one `terraform init -backend=false` with the user's own provider
//!    installation (registry, mirrors, credentials) into a temporary data folder and moves each
//!    new provider folder into the mirror with one rename (a kill leaves no half-copied
//!    provider). Accounts with the same requirements share that one install: the second takes
//!    the first's lock file.
//! 2. without the lock, runs its own `init` with a CLI configuration that installs those
//!    providers from the mirror only (Terraform links them, so nothing is copied) and the others
//!    as the user's configuration says. Only reads touch the mirror then, so parallel `init`s
//!    never collide, and Terraform checks each provider against the account's lock file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use hcl::{Block, Body, Expression, ObjectKey, Structure};

use super::process::{Invocation, Log};

/// Terraform's dependency lock file, in a root module.
pub const LOCK_FILE: &str = ".terraform.lock.hcl";

/// The registry a provider source without a host comes from.
const DEFAULT_HOST: &str = "registry.terraform.io";

/// What an account's root module asks for: normalised provider sources (`HOST/NAMESPACE/TYPE`)
/// with their version constraints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    pub providers: BTreeMap<String, String>,
    /// Some `.tf` file could not be read as HCL: the requirements may be incomplete.
    pub incomplete: bool,
}

impl Requirements {
    /// The `required_providers` of every `*.tf` file directly in `dir`.
    pub fn of(dir: &Path) -> Self {
        let mut out = Self::default();
        let Ok(entries) = fs_err::read_dir(dir) else {
            out.incomplete = true;
            return out;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tf"))
            .collect();
        files.sort();
        for file in files {
            match fs_err::read_to_string(&file).ok().and_then(|text| hcl::parse(&text).ok()) {
                Some(body) => out.add(&body),
                None => out.incomplete = true,
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
                    _ => {
                        self.incomplete = true;
                        continue;
                    }
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

/// Whether `source` is a provider address (`HOST/NAMESPACE/TYPE`) and `version` a version
/// Terraform would write: they name folders of the mirror, so nothing else may pass (no `..`,
/// no `/` in a part).
fn valid(source: &str, version: &str) -> bool {
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

/// The providers a lock file pins: source → version. Entries that are not a provider address
/// and a version are left out (they could not name a folder of the mirror).
pub fn locked(text: &str) -> Result<BTreeMap<String, String>, String> {
    let body = hcl::parse(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for block in body.0.iter().filter_map(Structure::as_block).filter(|b| b.identifier() == "provider") {
        let Some(source) = block.labels().first() else { continue };
        let version = block.body().0.iter().filter_map(Structure::as_attribute).find_map(|a| match a.expr() {
            Expression::String(v) if a.key() == "version" => Some(v.clone()),
            _ => None,
        });
        let source = normalise(source.as_str());
        if let Some(version) = version.filter(|v| valid(&source, v)) {
            out.insert(source, version);
        }
    }
    Ok(out)
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

/// The CLI configuration the user's Terraform reads: `TF_CLI_CONFIG_FILE`, else
/// `~/.terraformrc` when there is one.
fn user_cli_config() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TF_CLI_CONFIG_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".terraformrc")).filter(|p| p.is_file())
}

/// The environment variable Terraform reads a host's API token from (`TF_TOKEN_app_terraform_io`),
/// if the host name can be written as one.
fn token_variable(host: &str) -> Option<String> {
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
        return None;
    }
    Some(format!("TF_TOKEN_{}", host.replace('-', "__").replace('.', "_")))
}

/// What an account's `init` needs to install from the mirror.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Environment for `terraform init` (`TF_CLI_CONFIG_FILE`, tokens); empty when the account
    /// installs nothing from the mirror.
    pub env: Vec<(String, String)>,
    /// Providers `init` takes from the mirror.
    pub from_mirror: Vec<String>,
}

/// The mirror of one run (shared by every account of the process that uses the same folder).
#[derive(Debug)]
pub struct ProviderCache {
    root: PathBuf,
    platform: String,
    /// Lock files of the requirements installed by this process, by signature.
    installed: Mutex<HashMap<String, String>>,
}

/// Why the mirror could not serve an account.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("provider cache `{}`: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("cannot read the Terraform CLI configuration `{}`: {reason}", path.display())]
    CliConfig { path: PathBuf, reason: String },
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
        let cache = caches
            .entry(root.clone())
            .or_insert_with(|| Arc::new(Self { root, platform, installed: Mutex::default() }));
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

    /// Makes sure the mirror holds what the root module in `work` needs (installing it once if
    /// not), then writes `config` (a CLI configuration for `init`) and says how to use it.
    /// `terraform` is the binary; `log` the account's log; `hold` the account's lock.
    pub fn prepare(
        &self,
        work: &Path,
        config: &Path,
        terraform: &Path,
        log: &Log,
        hold: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Prepared, CacheError> {
        let requirements = Requirements::of(work);
        let lock_path = work.join(LOCK_FILE);
        let read_lock = || fs_err::read_to_string(&lock_path).ok().and_then(|t| locked(&t).ok()).unwrap_or_default();
        if requirements.providers.is_empty() && !lock_path.is_file() {
            return Ok(Prepared::default());
        }
        let signature = requirements.signature();
        let covered = |lock: &BTreeMap<String, String>| {
            requirements.providers.keys().all(|s| lock.contains_key(s))
                && lock.iter().all(|(source, version)| self.slot(source, version).is_dir())
        };
        {
            let mut installed = self.installed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _file_lock = self.lock_file()?;
            if !covered(&read_lock()) {
                match installed.get(&signature) {
                    // Same requirements as an account this run installed for: same providers.
                    Some(text) if !lock_path.is_file() => {
                        log.line(&format!("# provider cache: lock file of requirements {signature} from this run"));
                        fs_err::write(&lock_path, text).map_err(io_error(&lock_path))?;
                    }
                    _ => self.install(work, terraform, log, hold)?,
                }
            }
            if let Ok(text) = fs_err::read_to_string(&lock_path) {
                installed.entry(signature).or_insert(text);
            }
        }
        let from_mirror: Vec<String> =
            read_lock().into_iter().filter(|(s, v)| self.slot(s, v).is_dir()).map(|(s, _)| s).collect();
        if from_mirror.is_empty() {
            return Ok(Prepared::default());
        }
        let (text, tokens) = self.cli_config(Some(&from_mirror))?;
        crate::fsio::write_atomic_with(config, text.as_bytes(), crate::fsio::Mode::Private)
            .map_err(io_error(config))?;
        let mut env = vec![("TF_CLI_CONFIG_FILE".to_string(), config.display().to_string())];
        env.extend(tokens);
        Ok(Prepared { env, from_mirror })
    }

    /// Held while the mirror is checked and filled: other Stamp processes wait.
    fn lock_file(&self) -> Result<fs_err::File, CacheError> {
        fs_err::create_dir_all(self.mirror()).map_err(io_error(&self.root))?;
        let path = self.root.join(".lock");
        let file =
            fs_err::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io_error(&path))?;
        file.file().lock().map_err(io_error(&path))?;
        // Installs happen only under this lock: an install folder found now was left by a run
        // that was killed.
        if let Ok(entries) = fs_err::read_dir(&self.root) {
            for entry in entries.filter_map(Result::ok) {
                if entry.file_name().to_string_lossy().starts_with(".install-") {
                    let _ = fs_err::remove_dir_all(entry.path());
                }
            }
        }
        Ok(file)
    }

    /// Runs `terraform init -backend=false` in `work` as the user's configuration says, into a
    /// temporary data folder beside the mirror, and moves each provider it installed into the
    /// mirror with one rename.
    fn install(
        &self,
        work: &Path,
        terraform: &Path,
        log: &Log,
        hold: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<(), CacheError> {
        let staging =
            tempfile::Builder::new().prefix(".install-").tempdir_in(&self.root).map_err(io_error(&self.root))?;
        log.line(&format!(
            "# provider cache: resolving the providers of this root module into {}",
            self.mirror().display()
        ));
        // The mirror first, so a version it has is linked, not downloaded again.
        let (text, tokens) = self.cli_config(None)?;
        let config = staging.path().join("terraformrc");
        fs_err::write(&config, text).map_err(io_error(&config))?;
        let mut env = vec![
            ("TF_CLI_CONFIG_FILE".to_string(), config.display().to_string()),
            ("TF_DATA_DIR".to_string(), staging.path().join("data").display().to_string()),
            ("TF_IN_AUTOMATION".to_string(), "1".to_string()),
            ("TF_INPUT".to_string(), "0".to_string()),
            ("CHECKPOINT_DISABLE".to_string(), "1".to_string()),
        ];
        env.extend(tokens);
        let invocation = Invocation {
            program: terraform,
            args: ["init", "-backend=false", "-input=false", "-no-color"].map(String::from).to_vec(),
            cwd: work,
            env,
            timeout: None,
            grace: super::process::TERRAFORM_GRACE,
            log_stdout: true,
            hold,
        };
        let finished = invocation.run(log).map_err(|e| CacheError::Install(e.to_string()))?;
        if !finished.success() {
            return Err(CacheError::Install(finished.tail(12)));
        }
        let providers = staging.path().join("data").join("providers");
        for (source, version) in
            fs_err::read_to_string(work.join(LOCK_FILE)).ok().and_then(|t| locked(&t).ok()).unwrap_or_default()
        {
            let target = self.slot(&source, &version);
            let installed = providers.join(&source).join(&version).join(&self.platform);
            if target.is_dir() || !installed.exists() {
                continue;
            }
            let parent = target.parent().unwrap_or(&self.root);
            fs_err::create_dir_all(parent).map_err(io_error(parent))?;
            // Terraform links what it took from another cache or mirror: copy that in whole
            // first, so the rename below is the one step that makes it appear.
            let source_dir = fs_err::canonicalize(&installed).map_err(io_error(&installed))?;
            let ready = if source_dir == installed {
                installed
            } else {
                let copy = staging.path().join("copy").join(&source).join(&version);
                copy_dir(&source_dir, &copy).map_err(io_error(&copy))?;
                copy
            };
            match fs_err::rename(&ready, &target) {
                Ok(()) => log.line(&format!("# provider cache: downloaded {source} {version} into the cache")),
                // Another process put it there meanwhile (it does not hold our lock on a
                // file system without locks): theirs is as good.
                Err(_) if target.is_dir() => {}
                Err(e) => return Err(io_error(&target)(e)),
            }
            crate::fsio::sync_dir(parent).map_err(io_error(parent))?;
        }
        Ok(())
    }

    /// A CLI configuration for `init`: the user's (without its plugin cache and credentials)
    /// with the mirror as the first installation method. With `only`, those providers come from
    /// the mirror only and every other provider as the user's configuration says; without, the
    /// mirror's versions and the user's sources' are all candidates, and a version the mirror
    /// has is taken from it. Credentials move to `TF_TOKEN_*` variables, so no token is written
    /// to disk.
    fn cli_config(&self, only: Option<&[String]>) -> Result<(String, Vec<(String, String)>), CacheError> {
        let mut kept = Vec::new();
        let mut methods = Vec::new();
        let mut tokens = Vec::new();
        if let Some(path) = user_cli_config() {
            let fail = |reason: String| CacheError::CliConfig { path: path.clone(), reason };
            let text = match fs_err::read_to_string(&path) {
                Ok(text) => text,
                // Terraform runs without a CLI configuration it cannot find, and so does this.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(fail(crate::diagnostics::io_reason(&e))),
            };
            let body = hcl::parse(&text).map_err(|e| fail(e.to_string()))?;
            for structure in body.0 {
                match structure {
                    Structure::Attribute(a)
                        if matches!(a.key(), "plugin_cache_dir" | "plugin_cache_may_break_dependency_lock_file") => {}
                    Structure::Block(b) if b.identifier() == "provider_installation" => methods.extend(b.body.0),
                    Structure::Block(b) if b.identifier() == "credentials" => {
                        let host = b.labels().first().map(|l| l.as_str().to_string()).unwrap_or_default();
                        let token =
                            b.body().0.iter().filter_map(Structure::as_attribute).find_map(|a| match a.expr() {
                                Expression::String(t) if a.key() == "token" => Some(t.clone()),
                                _ => None,
                            });
                        match (token_variable(&host), token) {
                            (Some(variable), Some(token)) => tokens.push((variable, token)),
                            _ => {
                                return Err(fail(format!(
                                    "the credentials of `{host}` cannot be passed on as a TF_TOKEN_ variable: \
                                     move them to credentials.tfrc.json, or turn the provider cache off"
                                )));
                            }
                        }
                    }
                    other => kept.push(other),
                }
            }
        }
        let mut mirror =
            Block::builder("filesystem_mirror").add_attribute(("path", self.mirror().display().to_string()));
        if let Some(sources) = only {
            let listed: Vec<Expression> = sources.iter().map(|s| Expression::String(s.clone())).collect();
            mirror = mirror.add_attribute(("include", Expression::Array(listed)));
        }
        let mut installation = vec![Structure::Block(mirror.build())];
        if methods.is_empty() {
            methods.push(Structure::Block(Block::new("direct")));
        }
        for method in methods {
            installation.push(match (method, only) {
                (Structure::Block(mut block), Some(sources)) if block.identifier() != "dev_overrides" => {
                    exclude(&mut block, sources);
                    Structure::Block(block)
                }
                (other, _) => other,
            });
        }
        kept.push(Structure::Block(Block::builder("provider_installation").add_structures(installation).build()));
        let mut text =
            String::from("# Written by stamp for `terraform init` with its provider cache; not for editing.\n");
        text.push_str(&hcl::format::to_string(&Body(kept)).map_err(|e| CacheError::Install(e.to_string()))?);
        Ok((text, tokens))
    }
}

/// Adds `sources` to an installation method's `exclude` list.
fn exclude(block: &mut Block, sources: &[String]) {
    let mut listed: BTreeSet<String> = sources.iter().cloned().collect();
    block.body.0.retain(|s| match s {
        Structure::Attribute(a) if a.key() == "exclude" => {
            if let Expression::Array(items) = a.expr() {
                listed.extend(items.iter().filter_map(|i| match i {
                    Expression::String(s) => Some(s.clone()),
                    _ => None,
                }));
            }
            false
        }
        _ => true,
    });
    let items = listed.into_iter().map(Expression::String).collect();
    block.body.0.push(Structure::Attribute(hcl::Attribute::new("exclude", Expression::Array(items))));
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
            fs_err::File::open(&target)?.file().sync_all()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_normalised() {
        assert_eq!(normalise("aws"), "registry.terraform.io/hashicorp/aws");
        assert_eq!(normalise("Hashicorp/AWS"), "registry.terraform.io/hashicorp/aws");
        assert_eq!(normalise("example.com/stamp/echo"), "example.com/stamp/echo");
    }

    #[test]
    fn requirements_and_lock_files_are_read() {
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
        assert!(found.incomplete, "b.tf is not HCL");
        let lock =
            "provider \"registry.terraform.io/hashicorp/aws\" {\n  version = \"6.2.0\"\n  hashes = [\"h1:x\"]\n}\n";
        assert_eq!(locked(lock).unwrap()["registry.terraform.io/hashicorp/aws"], "6.2.0");
        assert!(locked("provider {").is_err());
        for (source, version) in [
            ("registry.terraform.io/../../etc", "1.0.0"),
            ("../../x/y", "1.0.0"),
            ("registry.terraform.io/hashicorp/aws", "../../../tmp"),
            ("registry.terraform.io/hashicorp/aws", "1/2"),
            ("registry.terraform.io/hashicorp/aws", ""),
        ] {
            let lock = format!("provider \"{source}\" {{\n  version = \"{version}\"\n}}\n");
            assert!(locked(&lock).unwrap().is_empty(), "{source} {version} names no folder of the mirror");
        }
        assert_eq!(locked("provider \"example.com:8443/a/b\" {\n  version = \"1.2.3-rc.1+x\"\n}\n").unwrap().len(), 1);
    }

    #[test]
    fn token_variables_follow_terraform() {
        assert_eq!(token_variable("app.terraform.io").as_deref(), Some("TF_TOKEN_app_terraform_io"));
        assert_eq!(token_variable("my-host.example").as_deref(), Some("TF_TOKEN_my__host_example"));
        assert_eq!(token_variable("host:8443"), None);
        assert_eq!(token_variable("a\nb"), None);
    }

    #[test]
    fn excludes_merge_with_the_users() {
        let mut block = Block::builder("direct").add_attribute(("exclude", vec!["a/b/c"])).build();
        exclude(&mut block, &["x/y/z".to_string()]);
        let text = hcl::format::to_string(&Body(vec![Structure::Block(block)])).unwrap();
        assert!(text.contains("\"a/b/c\"") && text.contains("\"x/y/z\""), "{text}");
    }
}

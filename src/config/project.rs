//! The project: `stamp.yaml` and everything it points at (archetypes, accounts).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use super::Account;
use super::archetype::{self, Archetype, ArchetypeFile};
use super::catalog::{Entry, FileRecord, Memo, Stat, Summary};
use super::layering;
use super::yaml::{self, Document};
use crate::cache::{Cache, Key};
use crate::diagnostics::{Diagnostic, Location, Report, Sources, did_you_mean, quoted_list};

/// The name of the project file Stamp looks for.
pub const PROJECT_FILE: &str = "stamp.yaml";

/// `stamp.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    #[serde(default = "default_archetypes")]
    pub archetypes: PathBuf,
    #[serde(default = "default_blueprints")]
    pub blueprints: PathBuf,
    #[serde(default = "default_accounts")]
    pub accounts: PathBuf,
    /// Org-wide defaults merged under every account.
    #[serde(default)]
    pub defaults: Value,
    #[serde(default)]
    pub state: StateSettings,
    /// Folder of the deployment ledger (default `.stamp/ledger`), used by the folder store.
    #[serde(default = "default_ledger")]
    pub ledger: PathBuf,
    /// Where Stamp keeps its own state (ledger, migration journals, run locks).
    #[serde(default)]
    pub store: StoreSettings,
    /// Folder the data hooks keep snapshots in (`STAMP_SNAPSHOT_DIR`, default
    /// `.stamp/snapshots`): a folder every machine reaches lets a migration started on one
    /// machine be resumed or rolled back from another.
    #[serde(default = "default_snapshots")]
    pub snapshots: PathBuf,
    /// Environments in promotion order, e.g. `[ci, staging, production]`.
    #[serde(default)]
    pub promotion: Vec<String>,
    /// Where `stamp playground new` allocates networks and zones.
    #[serde(default)]
    pub playgrounds: Option<PlaygroundSettings>,
    /// Where `terraform init` gets providers from: Stamp's shared cache.
    #[serde(default)]
    pub providers: ProviderSettings,
}

/// `providers:` in `stamp.yaml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// The provider cache folder (relative to the project), or `off`. Default:
    /// `$XDG_CACHE_HOME/stamp/providers` (`~/.cache/stamp/providers`).
    #[serde(default)]
    pub cache: Option<String>,
}

/// Names the provider cache folder (overrides `providers.cache`), or `off`.
pub const PROVIDER_CACHE_ENV: &str = "STAMP_PROVIDER_CACHE";

impl ProviderSettings {
    /// The provider cache folder of the project at `root`, or `None` when it is off:
    /// `STAMP_PROVIDER_CACHE`, else `providers.cache`, else the user's cache folder.
    pub fn cache_dir(&self, root: &Path) -> Option<PathBuf> {
        let chosen = std::env::var(PROVIDER_CACHE_ENV).ok().filter(|v| !v.is_empty()).or_else(|| self.cache.clone());
        match chosen.as_deref() {
            Some("off" | "false") => None,
            Some(path) => Some(root.join(path)),
            None => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
                Some(base.join("stamp").join("providers"))
            }
        }
    }
}

const PROJECT_KEYS: &[&str] = &[
    "archetypes",
    "blueprints",
    "accounts",
    "defaults",
    "state",
    "ledger",
    "store",
    "snapshots",
    "promotion",
    "playgrounds",
    "providers",
];

/// Whether `name` may name an account: it names folders, lock files, ledger files and git
/// tags, and `<name>-green` names its second slot.
pub fn valid_account_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.contains("..")
        && !name.ends_with("-green")
}

/// `playgrounds:` in `stamp.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaygroundSettings {
    /// The IPv4 network each playground's `network.cidr` is carved from.
    pub cidr_pool: ipnet::Ipv4Net,
    /// Prefix length of a playground's network (default: its source account's).
    #[serde(default)]
    pub prefix_length: Option<u8>,
    /// A playground's zone is `<name>.<zone_suffix>`.
    pub zone_suffix: String,
    /// Folder of playground account files, inside the accounts folder (default `playgrounds`).
    #[serde(default = "default_playground_dir")]
    pub dir: PathBuf,
}

fn default_playground_dir() -> PathBuf {
    "playgrounds".into()
}

fn default_snapshots() -> PathBuf {
    ".stamp/snapshots".into()
}

fn default_ledger() -> PathBuf {
    ".stamp/ledger".into()
}

fn default_archetypes() -> PathBuf {
    "archetypes".into()
}
fn default_blueprints() -> PathBuf {
    "blueprints".into()
}
fn default_accounts() -> PathBuf {
    "accounts".into()
}

/// Remote state settings (`state:` in `stamp.yaml`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    #[serde(default)]
    pub s3: Option<S3State>,
    #[serde(default)]
    pub local: LocalState,
    #[serde(default)]
    pub pg: Option<PgState>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3State {
    pub bucket: String,
    pub region: String,
    /// The `DynamoDB` lock table: deprecated (Terraform >= 1.11 locks in S3 itself,
    /// `use_lockfile`); when set, the backend uses both while a fleet moves over.
    #[serde(default)]
    pub lock_table: Option<String>,
    #[serde(default)]
    pub key_prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalState {
    /// Folder (relative to the project) holding `<account>/terraform.tfstate`.
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
}

impl Default for LocalState {
    fn default() -> Self {
        Self { dir: default_state_dir() }
    }
}

fn default_state_dir() -> PathBuf {
    ".stamp/state".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgState {
    /// Connection string; may also come from `PG_CONN_STR` at run time.
    #[serde(default)]
    pub conn_str: Option<String>,
}

/// `store:` in `stamp.yaml`: where Stamp keeps its own state.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum StoreSettings {
    /// The ledger folder (`ledger:`), with locks on this machine only: the default.
    #[default]
    Folder,
    /// A PostgreSQL database every machine of the team reaches.
    Pg(PgStoreSettings),
}

/// `store: {pg: ...}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgStoreSettings {
    /// A `postgres://` URL or `key=value` connection string; `STAMP_STORE_PG` replaces it, so
    /// no password needs to sit in a file.
    #[serde(default)]
    pub conn_str: Option<String>,
    /// The schema holding Stamp's tables (default `stamp`).
    #[serde(default)]
    pub schema: Option<String>,
}

/// A loaded project.
#[derive(Debug)]
pub struct Project {
    pub root: PathBuf,
    pub file: ProjectFile,
    pub archetypes: BTreeMap<String, Archetype>,
    /// The archetype folders whose `archetype.yaml` did not load (their diagnostics say why).
    unloaded_archetypes: std::collections::BTreeSet<String>,
    /// The loaded accounts, sorted by name: every account, or (loaded for a [`Scope::Only`])
    /// the named ones.
    pub accounts: Vec<Account>,
    /// Every account file that loads, sorted like `accounts`.
    pub catalog: Vec<Entry>,
    pub sources: Sources,
    /// The cache this run reads and fills (shared with the project at a git revision).
    pub memo: std::sync::Arc<Memo>,
    /// The beginning of every account's load key: `stamp.yaml` and the archetypes, what
    /// loading an account depends on besides its own file.
    load_keys: Key,
}

/// Which accounts [`Project::load_with`] loads whole.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every account.
    All,
    /// Only these (names or files); the others are known by their summary in the catalog.
    Only(&'a [String]),
}

/// An account file to load: where it belongs in the project, and where its content is read
/// (another place for a file of a git revision that equals the working tree's).
#[derive(Debug, Clone)]
pub struct AccountFile {
    pub path: PathBuf,
    /// Where its content is read when not at `path` (see [`AccountFile::read_from`]).
    pub elsewhere: Option<PathBuf>,
    /// Its `stat`, when taken already (else it is taken when the file is scanned).
    pub stat: Option<Stat>,
}

impl AccountFile {
    /// Where its content is read.
    pub fn read_from(&self) -> &Path {
        self.elsewhere.as_deref().unwrap_or(&self.path)
    }
}

/// How to load a project.
#[derive(Debug, Clone)]
pub struct LoadOptions<'a> {
    pub scope: Scope<'a>,
    /// The cache (see [`Memo::new`]).
    pub memo: std::sync::Arc<Memo>,
    /// The account files; `None`: the YAML files in the accounts folder.
    pub files: Option<Vec<AccountFile>>,
    /// What to do with each account the catalog has to read whole (the cache did not know it).
    pub prepare: Option<&'a dyn Prepare>,
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        Self { scope: Scope::All, memo: std::sync::Arc::new(Memo::new(Cache::off())), files: None, prepare: None }
    }
}

/// Work on each account that loading reads whole anyway, done while the account is at hand,
/// so that it is not read and parsed a second time (a `check` of every account renders it
/// there into the cache, see `ops::check::Prerender`).
pub trait Prepare: Sync + std::fmt::Debug {
    /// What to do with each such account of `project`, whose catalog is not filled yet.
    fn begin<'p>(&'p self, project: &'p Project) -> Box<Prepared<'p>>;
}

/// What [`Prepare::begin`] does with each account it is handed, with its catalog entry.
pub type Prepared<'p> = dyn Fn(&Entry, &Account) + Sync + 'p;

/// What loading one account file gave: its catalog entry, and the rest (boxed: a file the
/// cache knew has none of it, and 10,000 inline would be megabytes to write and move).
type Loaded = (Option<Entry>, Option<Box<Rest>>);

/// What loading an account file the cache did not know (or could not load) gave besides its
/// entry.
struct Rest {
    /// Kept whole (when the run loads every account).
    account: Option<Account>,
    problem: Option<Diagnostic>,
    /// What the cache is to remember of the file and its load.
    memo: Remembered,
}

impl Rest {
    fn problem(problem: Diagnostic) -> Box<Self> {
        Box::new(Self { account: None, problem: Some(problem), memo: (None, None) })
    }
}

/// A file's record for the cache (by path) and its load's summary (by load key), each when
/// the cache does not hold it already.
type Remembered = (Option<(String, FileRecord)>, Option<(String, Arc<Summary>)>);

impl Project {
    /// The nearest folder holding `stamp.yaml`, from `start` upwards.
    pub fn discover(start: &Path) -> Option<PathBuf> {
        start.ancestors().find(|dir| dir.join(PROJECT_FILE).is_file()).map(Path::to_path_buf)
    }

    /// Loads the project at `root` and every account, without the cache. Problems with single
    /// archetypes or accounts are returned as diagnostics next to the project; a broken
    /// `stamp.yaml` is an error.
    pub fn load(root: &Path) -> Result<(Project, Vec<Diagnostic>), Report> {
        Self::load_with(root, LoadOptions::default())
    }

    /// Loads the project at `root`: the accounts `options.scope` names whole, the others into
    /// the catalog (from the cache when it knows them).
    pub fn load_with(root: &Path, options: LoadOptions<'_>) -> Result<(Project, Vec<Diagnostic>), Report> {
        let root = root.to_path_buf();
        let sources = Sources::default();
        let (file, project_text) =
            load_project_file(&root, &sources).map_err(|d| Report::new(vec![*d], sources.clone()))?;
        let mut project = Project {
            root,
            file,
            archetypes: BTreeMap::new(),
            unloaded_archetypes: std::collections::BTreeSet::new(),
            accounts: Vec::new(),
            catalog: Vec::new(),
            sources,
            memo: options.memo,
            load_keys: Key::new("load"),
        };
        let mut diagnostics = project.load_archetypes();
        // Keyed (see `cache::FileKey`): `stamp.yaml` and the archetypes may hold secrets too.
        let digest = project.digest_of(&project_text);
        project.load_keys = Key::new("load").field(project.memo.file_digest(digest.as_bytes()));
        let files = match options.files {
            Some(files) => files,
            None => project.account_files()?,
        };
        let whole = matches!(options.scope, Scope::All);
        let prepare = options.prepare.map(|p| p.begin(&project));
        let (mut entries, mut rests) = (Vec::new(), Vec::new());
        files
            .into_par_iter()
            .map(|f| project.scan(f, whole, prepare.as_deref()))
            .unzip_into_vecs(&mut entries, &mut rests);
        drop(prepare);
        // Collected into the entries' own memory (`filter_map` is, `flatten` is not): for a
        // large fleet, megabytes of fresh memory not taken.
        #[allow(clippy::filter_map_identity)]
        let catalog: Vec<Entry> = entries.into_iter().filter_map(|entry| entry).collect();
        project.catalog = catalog;
        let (mut files, mut loads) = (Vec::new(), Vec::new());
        for rest in rests.into_iter().flatten() {
            let Rest { account, problem, memo: (file, load) } = *rest;
            project.accounts.extend(account);
            diagnostics.extend(problem);
            files.extend(file);
            loads.extend(load);
        }
        project.memo.keep(files, loads);
        // Unstable (no two files show alike, so the order is the same): a stable sort takes a
        // copy of every entry as scratch space, megabytes of fresh memory for a large fleet.
        project.catalog.sort_unstable_by(|a, b| (a.name(), &a.display).cmp(&(b.name(), &b.display)));
        if let Scope::Only(wanted) = options.scope {
            let entries: Vec<Entry> = wanted
                .iter()
                .filter_map(|w| project.entry(w).cloned())
                .filter(|e| project.accounts.iter().all(|a| a.display != e.display))
                .collect();
            for entry in entries {
                match project.load_entry(&entry) {
                    Ok(account) => project.accounts.push(account),
                    Err(d) => diagnostics.push(*d),
                }
            }
        }
        project.accounts.sort_unstable_by(|a, b| (&a.name, &a.display).cmp(&(&b.name, &b.display)));
        Ok((project, diagnostics))
    }

    /// The YAML files in the accounts folder.
    fn account_files(&self) -> Result<Vec<AccountFile>, Report> {
        let accounts_dir = self.root.join(&self.file.accounts);
        if !accounts_dir.is_dir() {
            return Err(Report::new(
                vec![
                    Diagnostic::error(
                        "project.accounts",
                        format!("accounts folder `{}` does not exist", self.display(&accounts_dir)),
                    )
                    .at(Location::file_only(PROJECT_FILE))
                    .hint("set `accounts:` in stamp.yaml to the folder holding the account YAML files"),
                ],
                self.sources.clone(),
            ));
        }
        account_files_in(&accounts_dir).map_err(|e| {
            let reason = crate::diagnostics::error_chain(&e);
            let problem = Diagnostic::error("project.accounts", format!("cannot read the account files: {reason}"))
                .at(Location::file_only(PROJECT_FILE));
            Report::new(vec![problem], self.sources.clone())
        })
    }

    /// The cache key of what an account's loading depends on besides its file: Stamp,
    /// `stamp.yaml` and every archetype's files.
    fn digest_of(&self, project_text: &str) -> String {
        let mut key = Key::new("project").field(project_text);
        for archetype in self.archetypes.values() {
            key = key.field(&archetype.name).field(&archetype.text).field(&archetype.schema_text);
        }
        // An archetype that did not load changes which accounts load.
        let dir = self.root.join(&self.file.archetypes);
        let mut names: Vec<String> = fs_err::read_dir(&dir)
            .map(|entries| {
                entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            })
            .unwrap_or_default();
        names.sort();
        key.field(names.join("\n")).finish()
    }

    /// Reads one account file for the catalog: its summary from the cache when the cache knows
    /// its content, else by loading it (kept whole when `whole`, handed to `prepare`).
    fn scan(&self, file: AccountFile, whole: bool, prepare: Option<&Prepared<'_>>) -> Loaded {
        let display = self.display(&file.path);
        let stat = file.stat.or_else(|| fs_err::metadata(file.read_from()).ok().as_ref().and_then(Stat::of));
        let cached =
            |file: AccountFile, display: String, content: String, load_key: String, summary, record: Option<_>| {
                let entry = scanned(file, display, content, load_key, summary);
                let rest = record.map(|r| Box::new(Rest { account: None, problem: None, memo: (Some(r), None) }));
                (Some(entry), rest)
            };
        // Known by its `stat`, with its summary: nothing to read (its record is in the index).
        if !whole && let Some(content) = self.memo.known_content(file.read_from(), stat) {
            let load_key = self.load_key(&display, content);
            if let Some(summary) = self.memo.summary(&load_key) {
                return cached(file, display, content.to_string(), load_key, summary, None);
            }
        }
        // Read: what it holds decides its keys (and replaces a record of other content).
        let text = match read(file.read_from(), &display) {
            Ok(text) => text,
            Err(d) => return (None, Some(Rest::problem(*d))),
        };
        let content = self.memo.file_digest(text.as_bytes());
        let record = self.memo.file_record(file.read_from(), stat, &content);
        let load_key = self.load_key(&display, &content);
        if !whole && let Some(summary) = self.memo.summary(&load_key) {
            return cached(file, display, content, load_key, summary, record);
        }
        match self.account_from_text(&file.path, &display, &text) {
            Ok(account) => {
                let summary = Arc::new(Summary::of(&account));
                let memo = (record, Some((load_key.clone(), summary.clone())));
                let entry = scanned(file, display, content, load_key, summary);
                if let Some(prepare) = prepare {
                    prepare(&entry, &account);
                }
                (Some(entry), Some(Box::new(Rest { account: whole.then_some(account), problem: None, memo })))
            }
            Err(d) => (None, Some(Rest::problem(*d))),
        }
    }

    fn load_key(&self, display: &str, content: &str) -> String {
        self.load_keys.clone().field(display).field(content).finish()
    }

    /// Loads the account of a catalog entry whole, with the entry's ledger facts. Its file must
    /// still hold what the catalog read.
    pub fn load_entry(&self, entry: &Entry) -> Result<Account, Box<Diagnostic>> {
        let text = read(entry.read_from(), &entry.display)?;
        if self.memo.file_digest(text.as_bytes()) != entry.content {
            return Err(Box::new(changed_while_read(&entry.display)));
        }
        let mut account = self.account_from_text(&entry.path, &entry.display, &text)?;
        account.slot = entry.slot;
        account.created_at.clone_from(&entry.created_at);
        account.ledger_damage.clone_from(&entry.ledger_damage);
        Ok(account)
    }

    /// The catalog entry of an account, by name or by the path of its YAML file.
    pub fn entry(&self, name_or_path: &str) -> Option<&Entry> {
        self.catalog.iter().find(|e| e.name() == name_or_path).or_else(|| {
            let wanted = fs_err::canonicalize(Path::new(name_or_path)).ok()?;
            self.catalog.iter().find(|e| fs_err::canonicalize(&e.path).ok().as_deref() == Some(wanted.as_path()))
        })
    }

    /// Loads one account file and adds it to the project (used for files outside the accounts
    /// folder too, so they are checked against the project's accounts).
    pub fn add_account(&mut self, path: &Path) -> Result<usize, Box<Diagnostic>> {
        let account = self.load_account(path)?;
        let content = self.memo.file_digest(read(path, &account.display)?.as_bytes());
        let entry = Entry {
            display: account.display.clone(),
            path: path.to_path_buf(),
            elsewhere: None,
            load_key: self.load_key(&account.display, &content),
            content,
            summary: Arc::new(Summary::of(&account)),
            slot: account.slot,
            created_at: account.created_at.clone(),
            ledger_damage: Vec::new(),
        };
        let at = self
            .catalog
            .binary_search_by(|e| (e.name(), &e.display).cmp(&(entry.name(), &entry.display)))
            .unwrap_or_else(|i| i);
        self.catalog.insert(at, entry);
        let index = self
            .accounts
            .binary_search_by(|a| (&a.name, &a.display).cmp(&(&account.name, &account.display)))
            .unwrap_or_else(|i| i);
        self.accounts.insert(index, account);
        Ok(index)
    }

    /// Reads, parses and layers one account file.
    fn load_account(&self, path: &Path) -> Result<Account, Box<Diagnostic>> {
        let display = self.display(path);
        let text = read(path, &display)?;
        self.account_from_text(path, &display, &text)
    }

    /// Parses and layers the text of the account file at `path` (shown as `display`).
    pub fn account_from_text(&self, path: &Path, display: &str, text: &str) -> Result<Account, Box<Diagnostic>> {
        // YAML breaks lines at a CR too: so do the snippets of diagnostics.
        let text = if text.contains('\r') { &text.replace("\r\n", "\n").replace('\r', "\n") } else { text };
        self.sources.add(display, text);
        self.parse_account(path, display, text).map_err(|mut problem| {
            // A file that could not be read as an account: which of its values are secrets is
            // not known. In a project that has any (or an archetype that did not load, which
            // may mark some), none of its lines is shown, nor a column in one (a place inside
            // a secret, or after it on its line, tells its length).
            if self.archetypes.values().any(|a| a.sensitive.is_some()) || !self.unloaded_archetypes.is_empty() {
                let every_line = (1..=text.lines().count()).collect();
                self.sources.add(display, hide_lines(text, &every_line));
                if let Some(location) = &mut problem.location {
                    *location = Location::file_only(&location.file).on_line(location.line);
                }
            }
            problem
        })
    }

    fn parse_account(&self, path: &Path, display: &str, text: &str) -> Result<Account, Box<Diagnostic>> {
        let display = display.to_string();
        let Document { value, positions } = yaml::parse(&display, text)?;
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| n.trim_end_matches(".yaml").trim_end_matches(".yml").to_string())
            .unwrap_or_default();
        let Value::Object(map) = &value else {
            return Err(Box::new(
                Diagnostic::error("account.not-a-map", "an account config must be a YAML mapping")
                    .at(Location::new(&display, 1, 1))
                    .hint("start with `archetype: <name>` and the account's values as `key: value` lines"),
            ));
        };
        let archetype = match map.get("archetype") {
            Some(Value::String(name)) => name.clone(),
            Some(_) => {
                let pos = positions.value("/archetype").expect("present key has a position");
                return Err(Box::new(
                    Diagnostic::error("account.archetype", "`archetype` must be a string")
                        .at(Location::new(&display, pos.line, pos.column)),
                ));
            }
            None => {
                return Err(Box::new(
                    Diagnostic::error("account.archetype", "missing required key `archetype`")
                        .at(Location::new(&display, 1, 1))
                        .hint(format!(
                            "add `archetype: <name>`; known archetypes: {}",
                            quoted_list(&self.archetypes.keys().cloned().collect::<Vec<_>>())
                        )),
                ));
            }
        };
        let Some(found) = self.archetypes.get(&archetype) else {
            let pos = positions.value("/archetype").expect("present key has a position");
            let known: Vec<String> = self.archetypes.keys().cloned().collect();
            let mut d = Diagnostic::error("account.unknown-archetype", format!("unknown archetype `{archetype}`"))
                .at(Location::new(&display, pos.line, pos.column).with_end_column(pos.end_column.unwrap_or(0)));
            if self.unloaded_archetypes.contains(&archetype) {
                let file = self.root.join(&self.file.archetypes).join(&archetype).join("archetype.yaml");
                return Err(Box::new(
                    d.hint(format!("`{}` did not load: its own errors say why", self.display(&file))),
                ));
            }
            if let Some(near) = did_you_mean(&archetype, known.iter().map(String::as_str)) {
                d = d.hint(format!("did you mean `{near}`?"));
            }
            return Err(Box::new(d.hint(format!(
                "known archetypes (folders in `{}`): {}",
                self.file.archetypes.display(),
                quoted_list(&known)
            ))));
        };
        let mut value = value;
        let hooks = take_key(&mut value, "hooks", (&positions, &display), "account.hooks", None)?;
        let (policies, policy_waivers) = account_policies(&mut value, &positions, &display)?;
        let map = value.as_object().expect("checked above");
        let name = match map.get("name") {
            Some(Value::String(name)) => name.clone(),
            _ => stem,
        };
        if !valid_account_name(&name) {
            let pos = positions.value("/name").map_or((1, 1), |p| (p.line, p.column));
            return Err(Box::new(
                Diagnostic::error("account.name", format!("invalid account name `{name}`"))
                    .at(Location::new(&display, pos.0, pos.1))
                    .hint("use letters, digits, `-`, `_` and `.` (at most 63), starting with a letter or digit: it names folders and tags; a `-green` suffix is kept for the account's second slot"),
            ));
        }
        let mut effective = layering::effective([&self.file.defaults, &found.file.defaults, &value]);
        if let Value::Object(map) = &mut effective {
            map.entry("name").or_insert_with(|| Value::String(name.clone()));
        }
        let (sensitive, misshapen) = found.sensitive.as_deref().map(|index| index.scan(&effective)).unwrap_or_default();
        let account = Account {
            name,
            path: path.to_path_buf(),
            display,
            archetype,
            own: value,
            positions,
            effective,
            hooks,
            policies,
            policy_waivers,
            slot: super::account::Slot::Blue,
            created_at: None,
            ledger_damage: Vec::new(),
            sensitive,
            misshapen,
        };
        self.hide_lines_of(&account, text);
        Ok(account)
    }

    /// Makes every diagnostic that shows a line of `account`'s file (whose text is `text`) show
    /// its [hidden lines](Account::hidden_lines) without their text.
    fn hide_lines_of(&self, account: &Account, text: &str) {
        let lines = account.hidden_lines();
        if !lines.is_empty() {
            self.sources.add(account.display.clone(), hide_lines(text, &lines));
        }
    }

    fn load_archetypes(&mut self) -> Vec<Diagnostic> {
        let dir = self.root.join(&self.file.archetypes);
        let mut diagnostics = Vec::new();
        let Ok(entries) = fs_err::read_dir(&dir) else {
            diagnostics.push(
                Diagnostic::error(
                    "project.archetypes",
                    format!("archetypes folder `{}` does not exist", self.display(&dir)),
                )
                .at(Location::file_only(PROJECT_FILE)),
            );
            return diagnostics;
        };
        let mut dirs: Vec<PathBuf> =
            entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.join("archetype.yaml").is_file()).collect();
        dirs.sort();
        for dir in dirs {
            match self.load_archetype(&dir) {
                Ok(archetype) => {
                    self.archetypes.insert(archetype.name.clone(), archetype);
                }
                Err(d) => {
                    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                    self.unloaded_archetypes.extend(name);
                    diagnostics.push(*d);
                }
            }
        }
        diagnostics
    }

    fn load_archetype(&self, dir: &Path) -> Result<Archetype, Box<Diagnostic>> {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let path = dir.join("archetype.yaml");
        let display = self.display(&path);
        let text = read(&path, &display)?;
        self.sources.add(display.clone(), text.as_str());
        let doc = yaml::parse(&display, &text)?;
        check_keys(&display, &doc, archetype::KEYS)?;
        let positions = doc.positions;
        let file: ArchetypeFile = serde_json::from_value(doc.value).map_err(|e| {
            Box::new(
                Diagnostic::error("archetype.invalid", format!("invalid archetype: {e}"))
                    .at(Location::file_only(&display)),
            )
        })?;
        if !is_folder_name(&file.blueprint) {
            let pos =
                positions.value("/blueprint").map_or((1, 1, 0), |p| (p.line, p.column, p.end_column.unwrap_or(0)));
            return Err(Box::new(
                Diagnostic::error(
                    "archetype.blueprint",
                    format!("`blueprint` must name a folder in `{}`, not a path out of it", self.file.blueprints.display()),
                )
                .at(Location::new(&display, pos.0, pos.1).with_end_column(pos.2))
                .hint("write the folder's name (`blueprint: service-platform`): a blueprint is read from the blueprints folder only"),
            ));
        }
        if let Err(e) = file.retry.check() {
            let pos = positions.value("/retry").map_or((1, 1), |p| (p.line, p.column));
            return Err(Box::new(
                Diagnostic::error("archetype.retry", format!("invalid retry pattern: {e}"))
                    .at(Location::new(&display, pos.0, pos.1)),
            ));
        }
        let schema_path = dir.join("schema.json");
        let schema_file = self.display(&schema_path);
        let schema_text = read(&schema_path, &schema_file)?;
        self.sources.add(schema_file.clone(), schema_text.as_str());
        let schema: Value = serde_json::from_str(&schema_text).map_err(|e| {
            Box::new(Diagnostic::error("archetype.schema-json", format!("invalid JSON: {e}")).at(Location::new(
                &schema_file,
                e.line(),
                e.column(),
            )))
        })?;
        let sensitive = crate::config::redact::SensitiveIndex::new(&schema).map_err(|e| {
            Box::new(
                Diagnostic::error("archetype.schema", format!("invalid JSON Schema: {e}"))
                    .at(Location::file_only(&schema_file))
                    .hint(
                        "Stamp resolves references within the schema file to find its `writeOnly` (sensitive) values",
                    ),
            )
        })?;
        let sensitive = sensitive.map(std::sync::Arc::new);
        Ok(Archetype {
            name,
            dir: dir.to_path_buf(),
            file,
            display,
            positions,
            schema_file,
            schema,
            sensitive,
            text,
            schema_text,
        })
    }

    /// Makes this project (read at a git revision) as careful as `now`: a value today's
    /// archetype marks `writeOnly` is sensitive in its accounts too (never shown, never
    /// rendered, redacted), and a resource today's archetype says holds data holds data here
    /// too. A revision from before a secret was marked, or a database listed, would otherwise
    /// render the secret in clear, or replace the database of a protected account unasked.
    pub fn as_careful_as(&mut self, now: &Project) {
        for archetype in self.archetypes.values_mut() {
            let Some(today) = now.archetypes.get(&archetype.name) else { continue };
            for resource in &today.file.stateful_resources {
                if !archetype.file.stateful_resources.contains(resource) {
                    archetype.file.stateful_resources.push(resource.clone());
                }
            }
        }
        let mut accounts = std::mem::take(&mut self.accounts);
        for account in &mut accounts {
            // By the archetype it has here, and the one it has today (once when they are one).
            let today = now.accounts.iter().find(|a| a.name == account.name).map(|a| a.archetype.clone());
            let mut names = vec![account.archetype.clone()];
            names.extend(today.filter(|t| *t != account.archetype));
            let marked = account.hidden_lines().len();
            for index in names.iter().filter_map(|name| now.archetypes.get(name)?.sensitive.clone()) {
                let (sensitive, misshapen) = index.scan(&account.effective);
                account.sensitive.extend(sensitive);
                account.misshapen.extend(misshapen);
            }
            // The text as the sources hold it, its lines hidden so far hidden already.
            if account.hidden_lines().len() != marked
                && let Some(text) = self.sources.get(&account.display)
            {
                self.hide_lines_of(account, &text);
            }
        }
        self.accounts = accounts;
    }

    /// A path as shown to the user: relative to the project root when inside it.
    pub fn display(&self, path: &Path) -> String {
        let path = relative_to(path, &self.root).unwrap_or_else(|| path.to_string_lossy());
        if path.contains('\\') { path.replace('\\', "/") } else { path.into_owned() }
    }

    /// Finds an account by name, or by the path of its YAML file.
    pub fn account(&self, name_or_path: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.name == name_or_path).or_else(|| {
            let wanted = Path::new(name_or_path);
            let wanted = fs_err::canonicalize(wanted).ok()?;
            self.accounts.iter().find(|a| fs_err::canonicalize(&a.path).ok().as_deref() == Some(wanted.as_path()))
        })
    }

    pub fn blueprint_dir(&self, blueprint: &str) -> PathBuf {
        self.root.join(&self.file.blueprints).join(blueprint)
    }
}

/// The YAML files (regular files, and links, which are refused when read) under `dir`, sorted, each read where it is, with
/// its `stat`; a folder that cannot be read is an error (never a folder without accounts).
pub fn account_files_in(dir: &Path) -> std::io::Result<Vec<AccountFile>> {
    // Each folder's entries sorted by name, folders walked depth first: the files come in the
    // order of their paths (compared component by component), without sorting whole paths.
    // Each file's `stat` is taken relative to its open folder (`DirEntry::metadata`), not by
    // walking its whole path again, on every core, before the walk leaves the folder (each
    // entry keeps its folder open): for thousands of accounts that is most of the time.
    fn walk(dir: &Path, files: &mut Vec<AccountFile>) -> std::io::Result<()> {
        let entries = match fs_err::read_dir(dir) {
            // A folder that is not there (any more) holds no accounts.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            entries => entries?,
        };
        let mut entries: Vec<(std::ffi::OsString, fs_err::DirEntry)> =
            entries.map(|e| e.map(|e| (e.file_name(), e))).collect::<Result<_, _>>()?;
        entries.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let kinds: Vec<std::fs::FileType> = entries.iter().map(|(_, e)| e.file_type()).collect::<Result<_, _>>()?;
        let yaml: Vec<AccountFile> = entries
            .par_iter()
            .zip(&kinds)
            .filter_map(|((name, entry), kind)| {
                let path = entry.path();
                // A link is listed too, so that reading it is refused at its place (an account
                // that silently vanished would have its tree removed as gone); but for a hidden
                // one, such as the lock an editor leaves beside a file it edits (`.#qa.yaml`).
                let hidden = name.as_encoded_bytes().starts_with(b".");
                ((kind.is_file() || (kind.is_symlink() && !hidden)) && is_yaml(&path)).then(|| {
                    let stat = entry.metadata().ok().as_ref().and_then(Stat::of);
                    AccountFile { path, elsewhere: None, stat }
                })
            })
            .collect();
        let subfolders: Vec<PathBuf> =
            entries.iter().zip(&kinds).filter(|(_, k)| k.is_dir()).map(|(e, _)| e.1.path()).collect();
        // The folder is closed before its subfolders are walked; files and subfolders merge
        // in the order of their names.
        drop(entries);
        let mut yaml = yaml.into_iter().peekable();
        for folder in subfolders {
            while let Some(file) = yaml.next_if(|f| f.path < folder) {
                files.push(file);
            }
            walk(&folder, files)?;
        }
        files.extend(yaml);
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    debug_assert!(files.is_sorted_by(|a, b| a.path <= b.path));
    Ok(files)
}

/// `path` relative to `base`, as [`Path::strip_prefix`] gives it, when it lies in `base`.
/// A scan shows each of thousands of files relative to the project: when `path` is `base`'s
/// text, a separator and plain names (as the accounts folder's listing makes it), the rest of
/// its text is the answer, without comparing the two path by path.
fn relative_to<'p>(path: &'p Path, base: &Path) -> Option<std::borrow::Cow<'p, str>> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let rest = bytes.strip_prefix(base.as_os_str().as_encoded_bytes()).and_then(|rest| rest.strip_prefix(b"/"));
    if let Some(rest) = rest
        && !base.as_os_str().is_empty()
        && rest.split(|&b| b == b'/').all(|name| !name.is_empty() && name != b"." && name != b"..")
    {
        return Some(String::from_utf8_lossy(rest));
    }
    path.strip_prefix(base).ok().map(Path::to_string_lossy)
}

/// The catalog entry of a scanned account file, as for an account never deployed (its ledger
/// facts, if it has any, come later: see [`Entry::annotate`]).
fn scanned(file: AccountFile, display: String, content: String, load_key: String, summary: Arc<Summary>) -> Entry {
    Entry {
        display,
        path: file.path,
        elsewhere: file.elsewhere,
        content,
        load_key,
        created_at: summary.created_at.clone(),
        summary,
        slot: super::Slot::Blue,
        ledger_damage: Vec::new(),
    }
}

/// Whether `name` names a folder inside another: plain names (`aws/service`), never `.`,
/// `..`, a root or a drive.
fn is_folder_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && Path::new(name).components().all(|part| matches!(part, std::path::Component::Normal(_)))
}

/// An account file whose content is not what Stamp read of it moments before.
fn changed_while_read(display: &str) -> Diagnostic {
    Diagnostic::error("account.changed", format!("`{display}` changed while Stamp was reading it"))
        .at(Location::file_only(display))
        .hint("run the command again")
}

pub fn is_yaml(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// `text` with the given lines (1-based) replaced by a note: they hold sensitive values.
fn hide_lines(text: &str, lines: &std::collections::BTreeSet<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if lines.contains(&(index + 1)) {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(indent);
            out.push_str("# (not shown: may hold a sensitive value)");
            if line.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Reads a project file, refusing one larger than Stamp reads before reading it.
fn read(path: &Path, display: &str) -> Result<String, Box<Diagnostic>> {
    let failure = |e: std::io::Error| {
        let reason = crate::diagnostics::io_reason(&e);
        Box::new(
            Diagnostic::error("io.read", format!("cannot read `{display}`: {reason}")).at(Location::file_only(display)),
        )
    };
    // A plain file, its last step not a link (one committed in its place could name any file
    // of the machine, such as `/proc/self/environ`, whose text an error would show), read no
    // further than the limit (a device or a file of `/proc` says it is empty).
    let (file, metadata) = crate::fsio::open_plain(path).map_err(|e| {
        if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
            Box::new(
                Diagnostic::error("io.link", format!("`{display}` is a symbolic link"))
                    .at(Location::file_only(display))
                    .hint("Stamp reads project files only as plain files, never through a link in their place: replace the link by the file"),
            )
        } else {
            failure(e)
        }
    })?;
    let size = metadata.len();
    if size > yaml::MAX_BYTES as u64 {
        return Err(Box::new(
            Diagnostic::error(
                "yaml.too-large",
                format!(
                    "`{display}` is {} KiB: Stamp reads files of at most {} KiB",
                    size / 1024,
                    yaml::MAX_BYTES / 1024
                ),
            )
            .at(Location::file_only(display)),
        ));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, yaml::MAX_BYTES as u64 + 1), &mut text)
        .map_err(failure)?;
    if text.len() > yaml::MAX_BYTES {
        return Err(Box::new(changed_while_read(display)));
    }
    Ok(text)
}

/// `stamp.yaml` of the project at `root`, read on its own.
pub fn read_settings(root: &Path) -> Result<ProjectFile, Box<Diagnostic>> {
    load_project_file(root, &Sources::default()).map(|(file, _)| file)
}

fn load_project_file(root: &Path, sources: &Sources) -> Result<(ProjectFile, String), Box<Diagnostic>> {
    let path = root.join(PROJECT_FILE);
    let text = read(&path, PROJECT_FILE)?;
    sources.add(PROJECT_FILE, text.as_str());
    let doc = yaml::parse(PROJECT_FILE, &text)?;
    let doc = if doc.value.is_null() { Document { value: Value::Object(serde_json::Map::new()), ..doc } } else { doc };
    check_keys(PROJECT_FILE, &doc, PROJECT_KEYS)?;
    let file = serde_json::from_value(doc.value).map_err(|e| {
        Box::new(
            Diagnostic::error("project.invalid", format!("invalid project file: {e}"))
                .at(Location::file_only(PROJECT_FILE)),
        )
    })?;
    Ok((file, text))
}

/// Reports an unknown top-level key with its position and the nearest known key.
fn check_keys(file: &str, doc: &Document, known: &[&str]) -> Result<(), Box<Diagnostic>> {
    let Value::Object(map) = &doc.value else {
        return Err(Box::new(
            Diagnostic::error("yaml.not-a-map", "expected a YAML mapping of `key: value` lines")
                .at(Location::new(file, 1, 1)),
        ));
    };
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            let pointer = format!("/{}", yaml::escape_pointer(key));
            let pos = doc.positions.key(&pointer).expect("keys have positions");
            let mut d = Diagnostic::error("yaml.unknown-key", format!("unknown key `{key}`"))
                .at(Location::new(file, pos.line, pos.column));
            if let Some(near) = did_you_mean(key, known.iter().copied()) {
                d = d.hint(format!("did you mean `{near}`?"));
            }
            return Err(Box::new(d));
        }
    }
    Ok(())
}

/// Takes a key Stamp reads itself (`hooks:`, `policies:`, `policy_waivers:`) out of an account's
/// config, so the schema never sees it, as a `T`; an invalid value is an error (`code`) at the
/// key's place, with `hint` when there is one.
fn take_key<T: serde::de::DeserializeOwned>(
    value: &mut Value,
    key: &str,
    (positions, display): (&yaml::Positions, &str),
    code: &'static str,
    hint: Option<&str>,
) -> Result<Option<T>, Box<Diagnostic>> {
    let Some(found) = value.as_object_mut().and_then(|m| m.remove(key)) else { return Ok(None) };
    serde_json::from_value(found).map(Some).map_err(|e| {
        let pos = positions.key(&format!("/{key}")).map_or((1, 1), |p| (p.line, p.column));
        let diagnostic =
            Diagnostic::error(code, format!("invalid `{key}`: {e}")).at(Location::new(display, pos.0, pos.1));
        Box::new(match hint {
            Some(hint) => diagnostic.hint(hint),
            None => diagnostic,
        })
    })
}

/// Takes an account file's `policies:` and `policy_waivers:` out of its config (the schema
/// never sees them). A waiver must say why: one without a `reason` is an error at its place.
fn account_policies(
    value: &mut Value,
    positions: &yaml::Positions,
    display: &str,
) -> Result<(Vec<super::policies::Policy>, Vec<super::policies::Waiver>), Box<Diagnostic>> {
    use super::policies::{POLICIES_KEY, WAIVERS_KEY};
    let at = |pointer: &str| {
        let pos = positions.key(pointer).map_or((1, 1), |p| (p.line, p.column));
        Location::new(display, pos.0, pos.1)
    };
    let policies = take_key(
        value,
        POLICIES_KEY,
        (positions, display),
        "account.policies",
        Some("see docs/authoring.md, \"Policy checks\""),
    )?
    .unwrap_or_default();
    let waivers: Vec<super::policies::Waiver> = take_key(
        value,
        WAIVERS_KEY,
        (positions, display),
        "account.policy-waivers",
        Some("each waiver is `{id: CHECK_ID, reason: why it is acceptable}`, optionally with `resource` and `policy`"),
    )?
    .unwrap_or_default();
    for (index, waiver) in waivers.iter().enumerate() {
        let place = format!("/{WAIVERS_KEY}/{index}");
        if waiver.id.trim().is_empty() {
            return Err(Box::new(
                Diagnostic::error("account.policy-waivers", "a policy waiver needs the `id` of the finding it waives")
                    .at(at(&place)),
            ));
        }
        if waiver.reason.trim().is_empty() {
            return Err(Box::new(
                Diagnostic::error(
                    "account.policy-waivers",
                    format!("the waiver of `{}` has no `reason`", crate::text::one_line(&waiver.id)),
                )
                .at(at(&place))
                .hint("write why this finding is acceptable for this account: every report shows it"),
            ));
        }
    }
    Ok((policies, waivers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::FileKey;

    #[test]
    fn a_path_is_shown_relative_to_its_project_as_strip_prefix_gives_it() {
        let bases = ["/p", "/p/", "/p/q", "p", "/", ".", "", "/p/./q", "/p//q", "/p/..", "/pq"];
        let rests = [
            "",
            "a.yaml",
            "accounts/a.yaml",
            "./a.yaml",
            "accounts//a.yaml",
            "accounts/./a.yaml",
            "accounts/../a.yaml",
            "accounts/",
            "accounts/.",
            "/a.yaml",
            "q/a.yaml",
            "..",
            "\u{e9}.yaml",
        ];
        for base in bases {
            for rest in rests {
                for path in [format!("{base}/{rest}"), format!("{base}{rest}"), rest.to_string()] {
                    let (path, base) = (Path::new(&path), Path::new(base));
                    let slow = path.strip_prefix(base).ok().map(Path::to_string_lossy);
                    assert_eq!(relative_to(path, base), slow, "{path:?} in {base:?}");
                }
            }
        }
        // A name that is not UTF-8 is shown as `Path::to_string_lossy` shows it.
        let odd = Path::new("/p").join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"a\xff.yaml"));
        assert_eq!(relative_to(&odd, Path::new("/p")).as_deref(), Some("a\u{fffd}.yaml"));
    }

    /// A cache record whose `stat` is the file's but whose content is not (a hand-made or
    /// foreign index, times a file system does not keep): the file is read, loads as it
    /// reads, and its record is replaced, as without the cache.
    #[test]
    fn a_record_that_names_other_content_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        let example = crate::starter::Example::LocalPlatform;
        let options = crate::ops::init::InitOptions { dir: root.clone(), example };
        crate::ops::init::init(&options).unwrap();
        let root = fs_err::canonicalize(&root).unwrap();
        let file = root.join(format!("accounts/{}.yaml", example.account()));
        // Older than a second when the record is taken: a record the next run trusts.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let stat = Stat::of(&fs_err::metadata(&file).unwrap());
        let memo_of = |root: &Path| {
            let cache = Cache::open(root, true);
            Memo::with_key(cache.clone(), FileKey::of(root, &cache).0)
        };
        let memo = memo_of(&root);
        let bogus = "0".repeat(64);
        let record = memo.file_record(&file, stat, &bogus).expect("a new record");
        memo.keep(vec![record], Vec::new());
        memo.save().unwrap();
        let load = || {
            let memo = Arc::new(memo_of(&root));
            let options = LoadOptions { scope: Scope::Only(&[]), memo: Arc::clone(&memo), files: None, prepare: None };
            let (project, diagnostics) = Project::load_with(&root, options).unwrap();
            assert!(diagnostics.is_empty(), "{diagnostics:?}");
            let content = project.catalog[0].content.clone();
            drop(project);
            Arc::try_unwrap(memo).unwrap().save().unwrap();
            content
        };
        let digest = FileKey::of(&root, &Cache::open(&root, true)).0.digest(&fs_err::read(&file).unwrap());
        assert_eq!(load(), digest);
        // The record now names what the file holds.
        let memo = memo_of(&root);
        assert_eq!(memo.known_content(&file, stat), Some(digest.as_str()));
    }

    /// A folder of account files that cannot be read (here: its path is longer than the system
    /// allows, so only a walk relative to its parent could reach it) is an error naming it, not
    /// a folder without accounts: the accounts in it would silently drop out of every command.
    #[test]
    #[cfg(target_os = "linux")]
    fn an_unreadable_accounts_folder_is_an_error() {
        use nix::fcntl::{OFlag, openat};
        use nix::sys::stat::{Mode, mkdirat};
        let root = tempfile::tempdir().unwrap();
        fs_err::write(root.path().join("top.yaml"), "archetype: x\n").unwrap();
        let name = "d".repeat(200);
        let mut dir = fs_err::File::open(root.path()).unwrap().into_file().into();
        for _ in 0..30 {
            mkdirat(&dir, name.as_str(), Mode::S_IRWXU).unwrap();
            dir = openat(&dir, name.as_str(), OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        }
        let error = account_files_in(root.path()).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidFilename, "{error}");
        assert!(crate::diagnostics::error_chain(&error).contains(&name), "the folder is named: {error}");
    }
}

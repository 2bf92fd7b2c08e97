//! The kill-at-every-step matrix for migrations and data copies, as a fast table test.
//!
//! The environments are a fake kept in memory (`FakeWorld`: environments with row counts, an
//! availability flag, snapshots), named as such: they stand in for Terraform and the data
//! hooks so that every order of failure can be tried. The store is real: the folder store and
//! the PostgreSQL store (on the test server). Every call a migration makes, to the
//! environments or to the store's writes, is numbered; for each number the run is killed just
//! before the call, just after it, or the call fails. Then another run (another process,
//! perhaps another machine) resumes or rolls back, and the rules must hold:
//!
//! - the account's data is never lost: some environment serving it, or a kept snapshot, holds
//!   it, and an environment is destroyed only while another one serves the same data;
//! - the old environment is destroyed only after the switch, and serves again after any
//!   failure before it;
//! - a resumed migration finishes with the new environment live and holding the data; a rolled
//!   back one with the old environment live, the new one gone; snapshots are never deleted.
//!
//! End-to-end versions with the real Terraform are in `tests/data.rs` and `tests/store.rs`.

mod common;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use stamp::config::{Account, Slot};
use stamp::ledger::journal::{Journal, MigrationStep, Status};
use stamp::ledger::{History, Record};
use stamp::ops::environments::{Environments, StepError};
use stamp::ops::migrate::{Driven, Mode, drive};
use stamp::store::{Holder, LockError, Place, Store, StoreError, StoreLock, StoredJournal};

/// What happens at the numbered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The process dies before the call has any effect.
    KillBefore,
    /// The process dies right after the call took effect, before it returned.
    KillAfter,
    /// The call fails (returns an error).
    Fail,
}

const FAULTS: [Fault; 3] = [Fault::KillBefore, Fault::KillAfter, Fault::Fail];

/// The panic payload of a simulated kill.
struct Killed;

/// Counts calls, and injects the fault at call number `at`.
#[derive(Debug, Default)]
struct Faults {
    calls: AtomicUsize,
    at: Option<(usize, Fault)>,
    /// What each call was, in order (for failure messages).
    names: std::sync::Mutex<Vec<String>>,
}

impl Faults {
    fn at(call: usize, fault: Fault) -> Self {
        Self { at: Some((call, fault)), ..Self::default() }
    }

    /// Runs `effect` as call `what`, with the fault if this is its number.
    fn call<T, E>(
        &self,
        what: &str,
        failure: impl FnOnce() -> E,
        effect: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.names.lock().unwrap().push(what.to_string());
        match self.at {
            Some((at, fault)) if at == n => match fault {
                Fault::KillBefore => std::panic::panic_any(Killed),
                Fault::Fail => Err(failure()),
                Fault::KillAfter => {
                    let _ = effect();
                    std::panic::panic_any(Killed)
                }
            },
            _ => effect(),
        }
    }
}

/// Simulated kills are expected: their panics are not printed.
fn quiet_kills() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Killed>().is_none() {
                default(info);
            }
        }));
    });
}

/// Runs `f` as one process: `None` if it was killed.
fn process<T>(f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(payload) if payload.downcast_ref::<Killed>().is_some() => None,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

type Data = BTreeMap<String, i64>;

#[derive(Debug, Clone)]
struct FakeEnv {
    data: Data,
    active: bool,
    scrubbed: bool,
}

/// Fake environments, in memory: what Terraform and the data hooks would do, and a record of
/// every rule broken.
#[derive(Debug, Default)]
struct FakeWorld {
    envs: BTreeMap<String, FakeEnv>,
    snapshots: BTreeMap<String, Data>,
    /// Data that must never be lost (each account's, when the test started).
    truth: BTreeMap<String, Data>,
    violations: Vec<String>,
    /// An environment taking traffic again takes writes: its data grows, and what must never
    /// be lost with it (so a copy made from an older snapshot is caught).
    traffic: bool,
}

impl FakeWorld {
    fn add(&mut self, instance: &str, customers: i64) {
        let data: Data = [("customers".to_string(), customers), ("orders".to_string(), customers * 3)].into();
        self.envs.insert(instance.into(), FakeEnv { data, active: true, scrubbed: false });
    }

    fn env(&mut self, env: &Account) -> Result<&mut FakeEnv, String> {
        let name = env.instance();
        self.envs.get_mut(&name).ok_or_else(|| format!("{name}: no such environment"))
    }

    /// Whether some environment of `account` other than `except` serves `data`.
    fn served_elsewhere(&self, account: &str, except: &str, data: &Data) -> bool {
        self.envs.iter().any(|(name, env)| {
            name != except
                && (name == account || name == &format!("{account}-green"))
                && env.active
                && &env.data == data
        })
    }
}

/// The fake environments as a migration or a copy sees them, with faults injected.
struct Fake<'a> {
    world: &'a mut FakeWorld,
    faults: &'a Faults,
}

fn injected() -> StepError {
    "injected failure".into()
}

impl Environments for Fake<'_> {
    fn availability(&mut self, env: &Account, active: bool) -> Result<bool, StepError> {
        let world = &mut *self.world;
        self.faults.call(&format!("availability {} {active}", env.instance()), injected, || {
            let traffic = world.traffic;
            let fake = world.env(env)?;
            let resumed = active && !fake.active;
            fake.active = active;
            if resumed && traffic {
                *fake.data.entry("customers".into()).or_default() += 1;
                let data = fake.data.clone();
                world.truth.insert(env.name.clone(), data);
            }
            Ok(true)
        })
    }

    fn snapshot(&mut self, env: &Account) -> Result<String, StepError> {
        let world = &mut *self.world;
        self.faults.call(&format!("snapshot {}", env.instance()), injected, || {
            let data = world.env(env)?.data.clone();
            let id = format!("snap-{}", world.snapshots.len() + 1);
            world.snapshots.insert(id.clone(), data);
            Ok(id)
        })
    }

    fn stats(&mut self, env: &Account) -> Result<Value, StepError> {
        let world = &mut *self.world;
        self.faults.call(&format!("stats {}", env.instance()), injected, || {
            Ok(serde_json::to_value(&world.env(env)?.data).unwrap())
        })
    }

    fn restore(&mut self, env: &Account, snapshot: &str, _of: &str) -> Result<(), StepError> {
        let world = &mut *self.world;
        self.faults.call(&format!("restore {}", env.instance()), injected, || {
            let data = world.snapshots.get(snapshot).cloned().ok_or_else(|| format!("no snapshot {snapshot}"))?;
            let target = world.env(env)?;
            target.data = data;
            target.scrubbed = false;
            Ok(())
        })
    }

    fn scrub(&mut self, env: &Account) -> Result<(), StepError> {
        let world = &mut *self.world;
        self.faults.call(&format!("scrub {}", env.instance()), injected, || {
            world.env(env)?.scrubbed = true;
            Ok(())
        })
    }

    fn build(&mut self, env: &Account, _version: &str) -> Result<(), StepError> {
        let world = &mut *self.world;
        self.faults.call(&format!("build {}", env.instance()), injected, || {
            // A new environment is seeded with data of its own; an existing one keeps its data.
            world.envs.entry(env.instance()).or_insert_with(|| FakeEnv {
                data: [("customers".to_string(), 5)].into(),
                active: false,
                scrubbed: false,
            });
            Ok(())
        })
    }

    fn retire(&mut self, env: &Account, _version: &str) -> Result<(), StepError> {
        let world = &mut *self.world;
        self.faults.call(&format!("retire {}", env.instance()), injected, || {
            let name = env.instance();
            let truth = world.truth[&env.name].clone();
            if world.envs.contains_key(&name) && !world.served_elsewhere(&env.name, &name, &truth) {
                world.violations.push(format!("{name} was destroyed while no other environment served the data"));
            }
            world.envs.remove(&name);
            Ok(())
        })
    }
}

/// A real store whose writes are numbered calls too (a kill can fall between a ledger append
/// and the journal write after it).
#[derive(Debug)]
struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: Arc<Faults>,
    /// Failing writes report the connection, and the locks with it, lost.
    lost: bool,
}

fn store_failure() -> StoreError {
    StoreError::Io { path: "injected".into(), source: std::io::Error::other("injected failure") }
}

impl Store for FaultyStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
    fn history(&self, account: &str) -> Result<History, StoreError> {
        self.inner.history(account)
    }
    fn histories(&self, accounts: Option<&[&str]>) -> Result<BTreeMap<String, History>, StoreError> {
        self.inner.histories(accounts)
    }
    fn append(&self, record: &Record) -> Result<(), StoreError> {
        self.faults.call(&format!("append {:?}", record.operation), store_failure, || self.inner.append(record))
    }
    fn place(&self, account: &str, damage: &stamp::ledger::Damage) -> Place {
        self.inner.place(account, damage)
    }
    fn journal(&self, account: &str) -> Result<Option<StoredJournal>, StoreError> {
        self.inner.journal(account)
    }
    fn journal_place(&self, account: &str) -> String {
        self.inner.journal_place(account)
    }
    fn put_journal(&self, journal: &Journal, expected: Option<u64>) -> Result<u64, StoreError> {
        let what = format!("put journal {:?} {:?}", journal.status, journal.done.last().map(|d| d.0));
        let failure = || if self.lost { StoreError::LostLocks } else { store_failure() };
        self.faults.call(&what, failure, || self.inner.put_journal(journal, expected))
    }
    fn finish_journal(&self, account: &str, expected: u64) -> Result<String, StoreError> {
        self.faults.call("finish journal", store_failure, || self.inner.finish_journal(account, expected))
    }
    fn finished_journals(&self) -> Result<Vec<(String, Journal)>, StoreError> {
        self.inner.finished_journals()
    }
    fn lock(&self, key: &str, holder: &Holder) -> Result<Option<StoreLock>, LockError> {
        self.inner.lock(key, holder)
    }
}

/// An account of the example project, renamed (each case has an account of its own in the
/// shared store), in the slot the store's ledger says is live, as a fresh process loads it.
struct Subject {
    base: Account,
}

impl Subject {
    fn new() -> Self {
        let project = common::Project::example();
        let workspace = stamp::ops::Workspace::load(project.path()).expect("the example project loads");
        let base = workspace.account("local-prod").expect("local-prod").clone();
        Self { base }
    }

    fn load(&self, name: &str, store: &dyn Store) -> Account {
        let mut account = Account { name: name.to_string(), ..self.base.clone() };
        account.annotate(&store.history(name).unwrap());
        account
    }
}

fn live_slot(store: &dyn Store, name: &str) -> Slot {
    stamp::ledger::live_slot(&store.history(name).unwrap().records)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recovery {
    Resume,
    Rollback,
}

/// One case: a migration of a fresh account with `fault` at call `at`, then a fault-free
/// `recovery`. The calls the first run made (to tell whether the fault was reached).
fn migration_case(
    subject: &Subject,
    store: &Arc<dyn Store>,
    name: &str,
    at: usize,
    fault: Fault,
    recovery: Recovery,
) -> usize {
    let case = format!("{name}: {fault:?} at call {at}, then {recovery:?}");
    let mut world = FakeWorld { traffic: true, ..FakeWorld::default() };
    world.add(name, 1000);
    world.truth.insert(name.to_string(), world.envs[name].data.clone());
    let faults = Arc::new(Faults::at(at, fault));
    let faulty: Arc<dyn Store> = Arc::new(FaultyStore { inner: store.clone(), faults: faults.clone(), lost: false });

    // The first run, with the fault.
    let account = subject.load(name, faulty.as_ref());
    let first = process(|| {
        let mut envs = Fake { world: &mut world, faults: &faults };
        drive(faulty.as_ref(), &account, &mut envs, &Mode::Start { to_version: "2.0.0".into() })
    });
    let calls = faults.calls.load(Ordering::SeqCst);
    let trace = faults.names.lock().unwrap().join(", ");
    let case = format!("{case} (calls: {trace})");
    assert!(world.violations.is_empty(), "{case}: {:?}", world.violations);
    if let Some(Ok(driven)) = &first {
        check_stopped_or_finished(&world, store.as_ref(), name, driven, &case);
    }
    check_data_kept(&world, name, &case);

    // Another run, without faults, resumes or rolls back.
    let clean = Faults::default();
    let account = subject.load(name, store.as_ref());
    let mut envs = Fake { world: &mut world, faults: &clean };
    let mode = if recovery == Recovery::Resume { Mode::Resume } else { Mode::Rollback };
    let second = drive(store.as_ref(), &account, &mut envs, &mode);
    let switched = live_slot(store.as_ref(), name) == Slot::Green;
    match second {
        Err(e) if e.contains("no migration of") => {
            // Nothing under way: it never started (its journal could not be written), or it
            // had finished.
            if switched {
                check_finished(&world, store.as_ref(), name, &case);
            } else {
                check_untouched(&world, name, &case);
            }
        }
        Err(e) if recovery == Recovery::Rollback && e.contains("has switched to the new environment already") => {
            assert!(switched, "{case}: refused to roll back before the switch");
            let clean = Faults::default();
            let mut envs = Fake { world: &mut world, faults: &clean };
            let resumed =
                drive(store.as_ref(), &account, &mut envs, &Mode::Resume).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(resumed.journal.status, Status::Finished, "{case}");
            check_finished(&world, store.as_ref(), name, &case);
        }
        Err(e) => panic!("{case}: the recovery was refused: {e}"),
        Ok(driven) if recovery == Recovery::Resume => {
            assert_eq!(driven.journal.status, Status::Finished, "{case}: {:?}", driven.journal);
            check_finished(&world, store.as_ref(), name, &case);
        }
        Ok(driven) => {
            assert_eq!(driven.journal.status, Status::RolledBack, "{case}: {:?}", driven.journal);
            check_untouched(&world, name, &case);
            assert!(!world.envs.contains_key(&format!("{name}-green")), "{case}: the new environment was kept");
        }
    }
    assert!(world.violations.is_empty(), "{case}: {:?}", world.violations);
    // Snapshots are never deleted, and the journal is kept among the finished ones.
    assert!(store.journal(name).unwrap().is_none(), "{case}: the journal is still under way");
    calls
}

/// After a first run that returned: stopped with the old environment serving (or saying it
/// could not bring it back), or finished.
fn check_stopped_or_finished(world: &FakeWorld, store: &dyn Store, name: &str, driven: &Driven, case: &str) {
    match driven.journal.status {
        Status::Finished => check_finished(world, store, name, case),
        Status::Stopped if !driven.journal.is_done(MigrationStep::Switch) => {
            let old_active = world.envs.get(name).is_some_and(|e| e.active);
            let said = driven.warnings.iter().any(|w| w.contains("could not be brought back into service"));
            assert!(old_active || said, "{case}: stopped before the switch, and the old environment does not serve");
            assert!(driven.journal.error.is_some(), "{case}: stopped without saying why");
        }
        Status::Stopped => {
            // Failed after the switch (retiring): the new environment serves.
            assert!(world.envs.get(&format!("{name}-green")).is_some_and(|e| e.active), "{case}");
        }
        other => panic!("{case}: unexpected status {other:?}"),
    }
}

fn check_data_kept(world: &FakeWorld, name: &str, case: &str) {
    let truth = &world.truth[name];
    let held = world.envs.values().any(|e| &e.data == truth) || world.snapshots.values().any(|d| d == truth);
    assert!(held, "{case}: the account's data is nowhere: {world:?}");
    assert!(
        world.envs.contains_key(name) || world.envs.contains_key(&format!("{name}-green")),
        "{case}: no environment left"
    );
}

fn check_finished(world: &FakeWorld, store: &dyn Store, name: &str, case: &str) {
    let new = world.envs.get(&format!("{name}-green")).unwrap_or_else(|| panic!("{case}: no new environment"));
    assert!(new.active, "{case}: the new environment does not serve");
    assert_eq!(&new.data, &world.truth[name], "{case}: the new environment lost data");
    assert!(!world.envs.contains_key(name), "{case}: the old environment was not retired");
    assert_eq!(live_slot(store, name), Slot::Green, "{case}: the ledger does not say the new slot is live");
    assert!(!world.snapshots.is_empty(), "{case}");
}

fn check_untouched(world: &FakeWorld, name: &str, case: &str) {
    let old = world.envs.get(name).unwrap_or_else(|| panic!("{case}: the old environment is gone"));
    assert!(old.active, "{case}: the old environment does not serve");
    assert_eq!(&old.data, &world.truth[name], "{case}: the old environment's data changed");
}

/// Every call of a fault-free migration, each with each fault, each recovered both ways.
fn migration_matrix(store: &Arc<dyn Store>, prefix: &str) {
    quiet_kills();
    let subject = Subject::new();
    let mut case = 0;
    let mut at = 0;
    loop {
        let mut reached = false;
        for fault in FAULTS {
            for recovery in [Recovery::Resume, Recovery::Rollback] {
                case += 1;
                let name = format!("{prefix}-{case}");
                reached |= migration_case(&subject, store, &name, at, fault, recovery) > at;
            }
        }
        if !reached {
            break;
        }
        at += 1;
    }
    // A migration makes well over a dozen calls; every one was tried.
    assert!(at > 12, "only {at} calls were tried");
}

#[test]
fn migration_killed_or_failing_at_every_step_folder_store() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(stamp::store::FolderStore::new(dir.path().join("ledger"), dir.path()));
    migration_matrix(&store, "folder");
}

#[test]
fn migration_killed_or_failing_at_every_step_postgresql_store() {
    let db = common::pg::Database::create();
    let store: Arc<dyn Store> = stamp::store::PgStore::shared(&db.conn(), Some("matrix")).unwrap();
    migration_matrix(&store, "pg");
}

/// Copies (clone --data, sync): killed or failing at every call, then run again.
#[test]
fn data_copy_killed_or_failing_at_every_step_then_run_again() {
    quiet_kills();
    let subject = Subject::new();
    let source = Account { name: "prod".into(), ..subject.base.clone() };
    let target = Account { name: "qa".into(), ..subject.base.clone() };
    let mut at = 0;
    loop {
        let mut reached = false;
        for fault in FAULTS {
            let case = format!("{fault:?} at call {at}");
            let mut world = FakeWorld::default();
            world.add("prod", 1000);
            world.add("qa", 40);
            let (prod, qa) = (world.envs["prod"].data.clone(), world.envs["qa"].data.clone());
            let faults = Faults::at(at, fault);
            let first = process(|| {
                let mut envs = Fake { world: &mut world, faults: &faults };
                stamp::ops::data::copy_data(&mut envs, &source, &target)
            });
            reached |= faults.calls.load(Ordering::SeqCst) > at;
            let trace = faults.names.lock().unwrap().join(", ");
            let case = format!("{case} (calls: {trace})");
            // The target's own data was kept before it was overwritten.
            if world.envs["qa"].data != qa {
                assert!(world.snapshots.values().any(|d| *d == qa), "{case}: the target's own data was not kept");
            }
            assert_eq!(world.envs["prod"].data, prod, "{case}: the source changed");
            assert!(world.envs["prod"].active, "{case}: the source left service");
            let qa_then = &world.envs["qa"];
            assert!(
                !(qa_then.active && qa_then.data == prod && !qa_then.scrubbed),
                "{case}: the target serves unscrubbed data"
            );
            if let Some(copy) = first {
                match &copy.error {
                    // After an error, the target serves again (or the report says it could not).
                    Some(error) => assert!(
                        world.envs["qa"].active || error.contains("could not be brought back"),
                        "{case}: {error}"
                    ),
                    None => assert!(copy.succeeded() && world.envs["qa"].active, "{case}: {copy:?}"),
                }
            }
            // Run again, without faults: the copy completes.
            let clean = Faults::default();
            let mut envs = Fake { world: &mut world, faults: &clean };
            let again = stamp::ops::data::copy_data(&mut envs, &source, &target);
            assert!(again.succeeded(), "{case}: {again:?}");
            let qa_now = &world.envs["qa"];
            assert!(qa_now.active && qa_now.scrubbed && qa_now.data == prod, "{case}: {qa_now:?}");
            assert_eq!(json!(world.violations), json!([]), "{case}");
        }
        if !reached {
            break;
        }
        at += 1;
    }
    assert!(at >= 7, "only {at} calls were tried");
}

/// Fake environments during whose build another run advances the migration's journal.
struct TakenOver<'a> {
    fake: Fake<'a>,
    store: &'a dyn Store,
}
impl Environments for TakenOver<'_> {
    fn availability(&mut self, env: &Account, active: bool) -> Result<bool, StepError> {
        self.fake.availability(env, active)
    }
    fn snapshot(&mut self, env: &Account) -> Result<String, StepError> {
        self.fake.snapshot(env)
    }
    fn stats(&mut self, env: &Account) -> Result<Value, StepError> {
        self.fake.stats(env)
    }
    fn restore(&mut self, env: &Account, snapshot: &str, of: &str) -> Result<(), StepError> {
        self.fake.restore(env, snapshot, of)
    }
    fn scrub(&mut self, env: &Account) -> Result<(), StepError> {
        self.fake.scrub(env)
    }
    fn build(&mut self, env: &Account, version: &str) -> Result<(), StepError> {
        let stored = self.store.journal(&env.name).unwrap().unwrap();
        self.store.put_journal(&stored.journal, Some(stored.revision)).unwrap();
        self.fake.build(env, version)
    }
    fn retire(&mut self, env: &Account, version: &str) -> Result<(), StepError> {
        self.fake.retire(env, version)
    }
}

/// Journals advance only from the revision read: a second writer of the same journal (two
/// runs resuming one migration at once, had they both got past the account's lock) is told,
/// and the run that lost stops without another step.
fn journal_compare_and_swap(store: &Arc<dyn Store>, name: &str) {
    let journal = Journal::start(name, Slot::Blue, "2.0.0");
    let first = store.put_journal(&journal, None).unwrap();
    assert!(matches!(store.put_journal(&journal, None), Err(StoreError::Conflict { .. })), "a second start");
    let second = store.put_journal(&journal, Some(first)).unwrap();
    assert!(matches!(store.put_journal(&journal, Some(first)), Err(StoreError::Conflict { .. })), "a stale writer");
    assert!(matches!(store.finish_journal(name, first), Err(StoreError::Conflict { .. })), "a stale finisher");
    assert_eq!(store.journal(name).unwrap().map(|s| s.revision), Some(second));

    // A migration whose journal another run advances while it builds stops after the build.
    quiet_kills();
    let subject = Subject::new();
    let other = format!("{name}-taken");
    let mut world = FakeWorld::default();
    world.add(&other, 100);
    world.truth.insert(other.clone(), world.envs[&other].data.clone());
    let account = subject.load(&other, store.as_ref());
    let clean = Faults::default();
    let mut envs = TakenOver { fake: Fake { world: &mut world, faults: &clean }, store: store.as_ref() };
    let stopped = drive(store.as_ref(), &account, &mut envs, &Mode::Start { to_version: "2.0.0".into() });
    let error = stopped.expect_err("the run went on after losing its journal");
    assert!(error.contains("was changed by another run since it was read"), "{error}");
    let calls = clean.names.lock().unwrap().clone();
    assert_eq!(calls.last().map(String::as_str), Some(format!("build {other}-green").as_str()), "{calls:?}");
}

#[test]
fn journals_are_compare_and_swap_in_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    let folder: Arc<dyn Store> = Arc::new(stamp::store::FolderStore::new(dir.path().join("ledger"), dir.path()));
    journal_compare_and_swap(&folder, "folder-cas");
    let db = common::pg::Database::create();
    let pg: Arc<dyn Store> = stamp::store::PgStore::shared(&db.conn(), None).unwrap();
    journal_compare_and_swap(&pg, "pg-cas");
}

/// A run whose store connection (and so its locks) is lost stops where it is: it neither goes
/// on nor puts the old environment back into service, since another run may hold the account
/// now (and have it in standby for its own snapshot).
#[test]
fn a_migration_that_loses_its_locks_touches_nothing_more() {
    quiet_kills();
    let subject = Subject::new();
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(stamp::store::FolderStore::new(dir.path().join("ledger"), dir.path()));
    // Calls: put journal (start), availability (standby), put journal (standby done): the loss
    // is noticed there.
    let faults = Arc::new(Faults::at(2, Fault::Fail));
    let faulty = FaultyStore { inner: store.clone(), faults: faults.clone(), lost: true };
    let mut world = FakeWorld::default();
    world.add("lost", 100);
    world.truth.insert("lost".into(), world.envs["lost"].data.clone());
    let account = subject.load("lost", &faulty);
    let mut envs = Fake { world: &mut world, faults: &faults };
    let stopped = drive(&faulty, &account, &mut envs, &Mode::Start { to_version: "2.0.0".into() });
    let error = stopped.expect_err("the run went on without its locks");
    assert!(error.contains("lost while this run held"), "{error}");
    let calls = faults.names.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "calls after the loss: {calls:?}");
    assert!(!world.envs["lost"].active, "the old environment was put back into service without the lock");
}

/// A journal is a file (or a row) that whoever reaches the store can edit, and a migration acts
/// on its word with the confirmation filled in. One that names the live environment as the one
/// to build into (the slots swapped) is refused before anything touches it; one that migrates
/// a slot to itself is no journal.
#[test]
fn an_edited_journal_never_touches_the_live_environment() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(stamp::store::FolderStore::new(dir.path().join("ledger"), dir.path()));
    let subject = Subject::new();
    let name = "edited";
    let mut world = FakeWorld { traffic: true, ..FakeWorld::default() };
    world.add(name, 1000);
    world.truth.insert(name.to_string(), world.envs[name].data.clone());
    // Blue is live (no record says otherwise): the journal migrates green into it.
    let mut journal = Journal::start(name, Slot::Green, "2.0.0");
    journal.mark(MigrationStep::Standby);
    journal.mark(MigrationStep::Snapshot);
    store.put_journal(&journal, None).unwrap();
    let faults = Faults::default();
    let account = subject.load(name, store.as_ref());
    let mut envs = Fake { world: &mut world, faults: &faults };
    let driven = drive(store.as_ref(), &account, &mut envs, &Mode::Resume);
    let calls = faults.names.lock().unwrap().clone();
    assert!(!calls.iter().any(|c| c.ends_with(&format!(" {name}"))), "the live environment was acted on: {calls:?}");
    let said = format!("{driven:?}");
    assert!(said.contains("the ledger says it is the live environment"), "{said}");
    check_untouched(&world, name, "an edited journal");

    let mut itself = Journal::start("itself", Slot::Blue, "2.0.0");
    itself.to_slot = Slot::Blue;
    store.put_journal(&itself, None).unwrap();
    let error = store.journal("itself").map(|_| ()).unwrap_err().to_string();
    assert!(error.contains("migrates slot `blue` to itself"), "{error}");
}

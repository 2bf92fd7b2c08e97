//! Stamp's own state in PostgreSQL, as a team uses it: two checkouts of one project (two CI
//! runners, or a runner and a laptop) share one database for Stamp's store and for
//! Terraform's `pg` state backend, and one folder of local-platform environments. What one
//! does, the other sees (`history`, `drift`, `promote`, `reap`); one account is worked on by
//! one run at a time, whichever checkout it runs in, and a killed run frees it at once; a
//! migration started in one is resumed from the other. Also: `stamp store import` of a folder
//! ledger (twice), and a schema newer than Stamp knows. Real PostgreSQL and Terraform.

mod common;

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::Project;
use common::pg::Database;

/// Two checkouts of one committed project whose store and Terraform state are in `db`.
struct Team {
    /// Dropped (with the database) when the test ends.
    _db: Database,
    a: Project,
    b: Project,
}

impl Team {
    /// `configure` changes the project (in the first checkout) before it is committed.
    fn new(configure: impl FnOnce(&Project)) -> Self {
        let db = Database::create();
        let conn = serde_json::to_string(&db.conn()).unwrap();
        let a = Project::local();
        let path = "archetypes/local-platform/archetype.yaml";
        let archetype = a.read(path);
        assert!(archetype.contains("provider: none\n"), "{archetype}");
        a.write(path, &archetype.replace("provider: none\n", "provider: none\nbackend: pg\n"));
        let stamp_yaml = a.read("stamp.yaml");
        assert!(stamp_yaml.contains("\nstate:\n"), "{stamp_yaml}");
        let shared = format!(
            "{}\nstore:\n  pg:\n    conn_str: {conn}\nsnapshots: {}\npromotion: [staging, production]\n",
            stamp_yaml.replace("\nstate:\n", &format!("\nstate:\n  pg:\n    conn_str: {conn}\n")),
            a.path().join("shared-snapshots").display()
        );
        a.write("stamp.yaml", &shared);
        // Production's AWS accounts cannot be applied here.
        for aws in ["production", "data-prod"] {
            fs_err::remove_file(a.path().join(format!("fixtures/accounts/{aws}.yaml"))).unwrap();
        }
        configure(&a);
        a.commit_all("initial");
        let b = a.clone_checkout();
        Self { _db: db, a, b }
    }
}

/// A marker file of the test, outside both checkouts' `.stamp`.
fn marker(team: &Team, name: &str) -> std::path::PathBuf {
    team.a.path().join(name)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn history(project: &Project, account: &str) -> Vec<serde_json::Value> {
    let out = project.tf(["history", account, "--format", "json"]).run().success();
    json(&out.stdout)["records"].as_array().unwrap().clone()
}

#[test]
fn what_one_checkout_deploys_the_other_sees() {
    let team = Team::new(|a| {
        // A hand-written ephemeral account: its creation time comes from the ledger.
        a.add_local_copy("shared-play", 44, "sandbox\nephemeral: true\nttl: 1h");
    });
    let (a, b) = (&team.a, &team.b);
    let commit = a.git(&["rev-parse", "--short=12", "HEAD"]);
    a.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();

    // history: the other checkout reads the apply, with who, version, commit and smoke tests.
    let seen = history(b, "local-staging");
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["operation"], "apply");
    assert_eq!(seen[0]["outcome"], "succeeded");
    assert_eq!(seen[0]["smoke_tests_passed"], true);
    assert_eq!(seen[0]["commit"].as_str(), Some(commit.as_str()));
    assert!(seen[0]["environment_version"].as_str().unwrap().starts_with("1.0.0+"), "{seen:?}");
    assert_eq!(seen, history(a, "local-staging"), "the two checkouts read different histories");
    let text = b.tf(["history"]).run().success();
    assert!(text.stdout.starts_with("TIME"), "{}", text.stdout);
    assert!(text.stdout.contains("local-staging") && text.stdout.contains("passed"), "{}", text.stdout);

    // drift: the other checkout reads the deployed version from the shared state.
    let drift = b.tf(["drift", "local-staging", "--format", "json"]).run().success();
    let entry = &json(&drift.stdout)["accounts"][0];
    assert_eq!(entry["state_read"], true, "{entry}");
    assert_eq!(entry["deployed_commit"].as_str(), Some(commit.as_str()), "{entry}");
    assert_eq!(entry["live_drift"], false, "{entry}");

    // promote: staging passed in the first checkout, so the second may promote to production.
    let promoted = b.tf(["promote", "1.0.0", "--to", "production", "--auto-approve"]).run().success();
    assert!(promoted.stdout.contains("local-prod: applied"), "{}", promoted.stdout);
    let prod = history(a, "local-prod");
    assert_eq!(prod.len(), 1, "{prod:?}");
    assert_eq!((prod[0]["operation"].as_str(), prod[0]["version"].as_str()), (Some("apply"), Some("1.0.0")));

    // reap: the ephemeral account applied in the first checkout is known to the second as
    // deployed (its creation time is in the shared ledger), and destroyed through the shared state.
    a.tf(["apply", "shared-play", "--auto-approve"]).run().success();
    let tomorrow = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(26 * 3600)).to_string();
    let dry = b.tf(["reap", "--dry-run"]).env("STAMP_NOW", &tomorrow).run().success();
    assert!(dry.stdout.contains("shared-play: would destroy (expired"), "{}", dry.stdout);
    let reaped = b.tf(["reap", "--all-ephemeral", "--confirm", "kill-switch"]).run().success();
    assert!(reaped.stdout.contains("shared-play: destroyed (kill switch"), "{}", reaped.stdout);
    assert!(!a.env_dir("shared-play").exists(), "reap left the environment");
    let play = history(a, "shared-play");
    assert_eq!(play[0]["operation"], "destroy", "{play:?}");
}

/// A pre-deploy hook that says it started, then waits until the test releases it (at most
/// a minute): the run holds its account meanwhile.
fn waiting_hook(team_dir: &Path) -> String {
    let started = team_dir.join("started");
    let release = team_dir.join("release");
    format!(
        "hooks:\n  pre_deploy:\n    - name: wait for the test\n      run: \"touch '{}'; i=0; while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\"\n      timeout: 2m\n",
        started.display(),
        release.display()
    )
}

fn wait_for(path: &Path, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !path.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut stdout, mut stderr) = (String::new(), String::new());
            child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            panic!("the run ended ({status}) before its hook started:\n{stdout}{stderr}");
        }
        assert!(Instant::now() < deadline, "the hook did not start within two minutes");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_run_per_account_across_checkouts_and_a_killed_run_frees_it() {
    let team = Team::new(|a| {
        let path = "fixtures/accounts/local-staging.yaml";
        a.write(path, &format!("{}{}", a.read(path), waiting_hook(a.path())));
    });
    let (a, b) = (&team.a, &team.b);
    let started = marker(&team, "started");
    let release = marker(&team, "release");

    // The first checkout's apply holds local-staging (it waits in its pre-deploy hook).
    let mut holder = a.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).spawn();
    wait_for(&started, &mut holder);
    let pid = holder.id();
    let held_by = |out: &common::Output| {
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            text.contains("account `local-staging` is in use by another stamp run"),
            "not refused for the lock:\n{}",
            out.snapshot()
        );
        assert!(text.contains(&format!("(pid {pid}, `stamp --quiet apply local-staging")), "{}", out.snapshot());
    };
    held_by(&b.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().failure(1));
    held_by(&b.tf(["migrate", "local-staging", "--to-version", "2.0.0", "--auto-approve"]).run().failure(1));
    held_by(&b.tf(["sync", "local-staging", "local-qa"]).run().failure(1));
    // Other accounts are free.
    b.tf(["plan", "local-qa", "--version", "1.0.0"]).run().failure(2);
    let status = b.tf(["store", "status"]).run().success();
    assert!(status.stdout.contains("locked: account `local-staging`"), "{}", status.stdout);
    assert!(status.stdout.contains(&format!("pid {pid}")), "{}", status.stdout);

    // kill -9: the server ends the session, and its lock with it; nothing is left to clear.
    holder.kill().unwrap();
    holder.wait().unwrap();
    fs_err::write(&release, "").unwrap();
    let status = b.tf(["store", "status"]).run().success();
    assert!(status.stdout.contains("locks: none held"), "{}", status.stdout);
    let apply = b.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    assert!(apply.stdout.contains("local-staging: applied"), "{}", apply.stdout);
    assert_eq!(history(a, "local-staging").len(), 1);
}

#[test]
fn a_migration_killed_in_one_checkout_is_resumed_from_the_other() {
    let team = Team::new(|a| {
        // Kills the `stamp` running it once, right after restoring: the migration dies between
        // two steps of its journal. The marker is shared, so only the first checkout's dies.
        let once = a.path().join("killed-once");
        a.replace_restore_hook(&format!(
            "set -e\npython3 scripts/data.py restore\nif [ ! -e '{0}' ]; then\n  touch '{0}'\n  kill -9 \"$PPID\"\nfi",
            once.display()
        ));
    });
    let (a, b) = (&team.a, &team.b);
    a.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    let killed = a.tf(["migrate", "local-staging", "--to-version", "2.0.0", "--auto-approve"]).run();
    assert_eq!(killed.code, -1, "stamp was not killed by the hook:\n{}", killed.snapshot());
    let status = b.tf(["store", "status"]).run().success();
    assert!(status.stdout.contains("migrations under way: local-staging"), "{}", status.stdout);

    let resumed = b.tf(["migrate", "local-staging", "--resume", "--auto-approve"]).run().success();
    assert!(resumed.stdout.contains("finished"), "{}", resumed.stdout);
    assert!(resumed.stdout.contains("done: new version built alongside (earlier)"), "{}", resumed.stdout);
    assert!(!a.env_dir("local-staging").exists(), "the old environment was not retired");
    assert!(a.env_dir("local-staging-green").exists());

    // The first checkout knows the account runs in its new slot now: nothing to change there.
    a.tf(["plan", "local-staging", "--version", "2.0.0"]).run().success();
    let gone = a.tf(["migrate", "local-staging", "--resume", "--auto-approve"]).run().failure(1);
    assert!(gone.stderr.contains("no migration of `local-staging` is under way"), "{}", gone.stderr);
    let operations: Vec<String> =
        history(a, "local-staging").iter().map(|r| r["operation"].as_str().unwrap().to_string()).collect();
    assert_eq!(operations, ["destroy", "switch", "apply", "apply"], "newest first");
}

/// Line counts of every ledger file of a folder store.
fn folder_records(project: &Project) -> usize {
    let dir = project.path().join(".stamp/ledger");
    fs_err::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| fs_err::read_to_string(p).unwrap().lines().count())
        .sum()
}

#[test]
fn store_import_copies_a_folder_ledger_once_and_verifies_it() {
    let db = Database::create();
    let project = Project::local();
    let pg = |run: common::Run| run.env("STAMP_STORE_PG", db.conn());
    // Records of every kind, in the folder store: applies (with smoke tests, in both slots),
    // a switch and a destroy (a finished migration of local-prod), and a migration of
    // local-staging still under way (killed between two steps).
    project.tf(["apply", "local-prod", "--auto-approve", "--version", "1.0.0"]).run().success();
    project.tf(["migrate", "local-prod", "--to-version", "2.0.0", "--auto-approve"]).run().success();
    project.replace_restore_hook(
        "set -e\npython3 scripts/data.py restore\nif [ ! -e \"$STAMP_PROJECT/killed-once\" ]; then\n  touch \"$STAMP_PROJECT/killed-once\"\n  kill -9 \"$PPID\"\nfi",
    );
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    let killed = project.tf(["migrate", "local-staging", "--to-version", "2.0.0", "--auto-approve"]).run();
    assert_eq!(killed.code, -1, "{}", killed.snapshot());
    let records = folder_records(&project);
    assert_eq!(records, 6, "apply, apply (green), switch, destroy; apply, apply (green)");

    let first = pg(project.tf(["store", "import", "--format", "json"])).run().success();
    let copied = json(&first.stdout);
    assert_eq!(copied["records"], records);
    assert_eq!(copied["copied"]["records_added"], records);
    assert_eq!(copied["copied"]["journals_added"], 1, "the finished migration of local-prod");
    assert_eq!(copied["copied"]["active_journals"], 1, "the migration of local-staging under way");
    assert_eq!(copied["copied"]["records_verified"], records);
    // Twice: nothing is added, everything is verified again.
    let again = pg(project.tf(["store", "import", "--format", "json"])).run().success();
    let again = json(&again.stdout);
    assert_eq!(again["copied"]["records_added"], 0);
    assert_eq!(again["copied"]["journals_added"], 0);
    assert_eq!(again["copied"]["records_verified"], records);
    assert_eq!(again["copied"]["digest"], copied["copied"]["digest"]);
    let text = pg(project.tf(["store", "import"])).run().success();
    assert!(text.stdout.contains("imported 0 ledger records (6 were there already)"), "{}", text.stdout);
    assert_eq!(db.psql("SELECT count(*) FROM stamp.ledger"), "6");

    // The history reads the same from either store.
    let from_folder = json(&project.tf(["history", "--format", "json"]).run().success().stdout);
    let from_pg = json(&pg(project.tf(["history", "--format", "json"])).run().success().stdout);
    assert_eq!(from_folder["records"], from_pg["records"]);
    assert_eq!(from_pg["records"].as_array().unwrap().len(), records);
    // The migration under way continues from PostgreSQL.
    let status = pg(project.tf(["store", "status"])).run().success();
    assert!(status.stdout.contains("migrations under way: local-staging"), "{}", status.stdout);
    assert!(status.stdout.contains("records: 6 of 2 accounts"), "{}", status.stdout);
    let resumed = pg(project.tf(["migrate", "local-staging", "--resume", "--auto-approve"])).run().success();
    assert!(resumed.stdout.contains("finished"), "{}", resumed.stdout);

    // A record or a finished journal changed in the database since it was copied is found.
    let first = "(SELECT min(id) FROM stamp.ledger WHERE import_key IS NOT NULL)";
    let who = db.psql(&format!("SELECT record->>'who' FROM stamp.ledger WHERE id = {first}"));
    db.psql(&format!(
        "UPDATE stamp.ledger SET record = jsonb_set(record, '{{who}}', '\"mallory\"') WHERE id = {first}"
    ));
    let tampered = pg(project.tf(["store", "import"])).run().failure(1);
    assert!(tampered.stderr.contains("5 of 6 records read back as they are in the folder"), "{}", tampered.stderr);
    db.psql(&format!(
        "UPDATE stamp.ledger SET record = jsonb_set(record, '{{who}}', to_jsonb('{who}'::text)) WHERE id = {first}"
    ));
    db.psql("UPDATE stamp.finished_journals SET journal = jsonb_set(journal, '{to_version}', '\"9.9.9\"')");
    let tampered = pg(project.tf(["store", "import"])).run().failure(1);
    assert!(
        tampered.stderr.contains("0 of 1 finished journals read back as they are in the folder"),
        "{}",
        tampered.stderr
    );
    // Another checkout's ledger folder, whose history of local-prod differs from the one
    // imported: its records would come after those, and the order says which slot is live.
    let other = project.path().join("other-ledger");
    fs_err::create_dir_all(&other).unwrap();
    let first_line = project.read(".stamp/ledger/local-prod.jsonl").lines().next().unwrap().to_string();
    fs_err::write(other.join("local-prod.jsonl"), format!("{}\n", first_line.replace("\"time\":\"", "\"time\":\"1")))
        .unwrap();
    let diverging = pg(project.tf(["store", "import", "--from", "other-ledger"])).run().failure(1);
    assert!(
        diverging.stderr.contains("`local-prod` already has records imported from another ledger folder"),
        "{}",
        diverging.stderr
    );
    assert_eq!(db.psql("SELECT count(*) FROM stamp.ledger WHERE account = 'local-prod'"), "4");
    // Records of an account already used through PostgreSQL (the resumed migration above)
    // are not imported after them: they would change which slot the ledger says is live.
    let ledger = project.path().join(".stamp/ledger/local-staging.jsonl");
    let last = project
        .read(".stamp/ledger/local-staging.jsonl")
        .lines()
        .last()
        .unwrap()
        .replace("\"time\":\"", "\"time\":\"1");
    fs_err::write(&ledger, format!("{}{last}\n", project.read(".stamp/ledger/local-staging.jsonl"))).unwrap();
    let late = pg(project.tf(["store", "import"])).run().failure(1);
    assert!(late.stderr.contains("`local-staging` already has records written through PostgreSQL"), "{}", late.stderr);
    assert_eq!(
        db.psql("SELECT count(*) FROM stamp.ledger WHERE import_key IS NOT NULL"),
        "6",
        "a refused import added records"
    );

    // A damaged folder is refused with its place, and nothing of it is copied.
    let ledger = project.path().join(".stamp/ledger/local-qa.jsonl");
    fs_err::write(&ledger, "{\"time\": \"torn\n").unwrap();
    let damaged = pg(project.tf(["store", "import"])).run().failure(1);
    assert!(damaged.stderr.contains("local-qa.jsonl` line 1"), "{}", damaged.stderr);
    assert_eq!(db.psql("SELECT count(*) FROM stamp.ledger WHERE account = 'local-qa'"), "0");
}

#[test]
fn the_store_schema_is_created_upgraded_and_a_newer_one_refused() {
    let db = Database::create();
    let project = Project::example();
    let pg = |run: common::Run| run.env("STAMP_STORE_PG", db.conn());
    let status = pg(project.stamp(["store", "status"])).run().success();
    assert!(status.stdout.contains("schema version: 1"), "{}", status.stdout);
    assert!(status.stdout.contains("records: 0 of 0 accounts"), "{}", status.stdout);
    // The connection string's password never shows.
    assert!(!status.stdout.contains("postgres://"), "{}", status.stdout);
    let history = pg(project.stamp(["history"])).run().success();
    assert_eq!(history.stdout, "no deployments recorded\n");

    db.psql("UPDATE stamp.meta SET value = 99 WHERE key = 'schema_version'");
    let newer = pg(project.stamp(["history"])).run().failure(1);
    assert!(newer.stderr.contains("at version 99, newer than this Stamp knows (1): upgrade Stamp"), "{}", newer.stderr);

    // `store: {pg: {}}` without a connection string says where to put one.
    let path = "stamp.yaml";
    project.write(path, &format!("{}\nstore:\n  pg: {{}}\n", project.read(path)));
    let missing = project.stamp(["history"]).run().failure(1);
    assert!(missing.stderr.contains("set `STAMP_STORE_PG` in the environment"), "{}", missing.stderr);
}

/// Two stores on one database as two machines would have them (one process keeps one
/// connection per connection string, so the second names itself differently).
fn two_machines(db: &Database) -> (std::sync::Arc<stamp::store::PgStore>, std::sync::Arc<stamp::store::PgStore>) {
    let one = stamp::store::PgStore::shared(&db.conn(), None).unwrap();
    let other = format!("{}&application_name=other-machine", db.conn());
    let two = stamp::store::PgStore::shared(&other, None).unwrap();
    (one, two)
}

#[test]
fn a_run_that_loses_its_connection_loses_its_locks_for_good() {
    use stamp::store::{Holder, Store, StoreError};
    let db = Database::create();
    let (one, two) = two_machines(&db);
    let held = one.lock("account:prod", &Holder::me()).unwrap().expect("a shared lock");
    assert!(two.lock("account:prod", &Holder::me()).is_err(), "two runs held one account");
    // The server ends the first machine's session (a network drop, a restart, a DBA).
    db.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'stamp' AND datname = current_database()");
    let taken = two.lock("account:prod", &Holder::me()).unwrap();
    assert!(taken.is_some(), "the lock of the dead session was not freed");
    // The first machine notices, and does nothing more through the store: no silent
    // reconnect, no lock "taken again" from its own count, no journal written.
    assert!(matches!(one.history("prod"), Err(StoreError::LostLocks)), "{:?}", one.history("prod"));
    assert!(one.lock("account:prod", &Holder::me()).is_err(), "the lost lock was taken again");
    let journal = stamp::ledger::journal::Journal::start("prod", stamp::config::Slot::Blue, "2.0.0");
    assert!(matches!(one.put_journal(&journal, None), Err(StoreError::LostLocks)));
    // Once it has let go of what it held, it may start afresh, and finds the account taken.
    drop(held);
    assert!(one.history("prod").is_ok());
    let refused = one.lock("account:prod", &Holder::me()).unwrap_err().to_string();
    assert!(refused.contains("account `prod` is in use by another stamp run"), "{refused}");
    drop(taken);
}

#[test]
fn a_function_shadowing_the_lock_hash_does_not_turn_the_locks_off() {
    use stamp::store::{Holder, Store};
    let db = Database::create();
    // Any role that may create functions in a schema on the search path could do this.
    db.psql(
        "CREATE FUNCTION public.hashtextextended(text, integer) RETURNS bigint
         AS 'SELECT (random() * 1e12)::bigint' LANGUAGE sql",
    );
    let (one, two) = two_machines(&db);
    let _held = one.lock("account:prod", &Holder::me()).unwrap();
    assert!(two.lock("account:prod", &Holder::me()).is_err(), "two runs held one account");
}

/// Approves every plan (the test watches what was refused before any plan).
struct Approve;

impl stamp::ops::deploy::Approver for Approve {
    fn approve(&self, _: &stamp::ops::plan_report::PlanReport) -> Result<(), String> {
        Ok(())
    }
}

/// A run loaded the project (local-staging live in its blue slot); before it takes the
/// account's lock, another machine finishes a migration to green. Under the lock the run reads
/// the ledger again and is refused instead of applying to the retired slot.
#[test]
fn an_apply_is_refused_when_the_live_slot_moved_on_after_loading() {
    let project = Project::local();
    let workspace = stamp::ops::Workspace::load(project.path()).unwrap();
    let loaded = workspace.account("local-staging").unwrap();
    assert_eq!(loaded.slot, stamp::config::Slot::Blue);
    let switch = serde_json::json!({
        "time": "2026-12-02T00:00:00Z", "account": "local-staging", "environment": "staging",
        "operation": "switch", "outcome": "succeeded", "version": "2.0.0",
        "environment_version": "2.0.0+none", "commit": "none", "digest": "", "who": "other machine",
        "slot": "green"
    });
    let record: stamp::ledger::Record = serde_json::from_value(switch).unwrap();
    workspace.store.append(&record).unwrap();

    let options = stamp::ops::deploy::ApplyOptions {
        deploy: stamp::ops::deploy::DeployOptions {
            accounts: vec!["local-staging".into()],
            terraform: Some(common::terraform()),
            jobs: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let report = stamp::ops::deploy::apply(&workspace, &options, &Approve, &stamp::pipeline::account::Quiet).unwrap();
    assert!(!report.succeeded(), "applied to the retired slot");
    let text = serde_json::to_string(&report).unwrap();
    assert!(text.contains("now runs in its green slot, not the blue slot this run loaded"), "{text}");
    assert!(!project.env_dir("local-staging").exists(), "something was applied");
}

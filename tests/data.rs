//! Production-like copies, migrations and playgrounds, end to end with the real Terraform on
//! local-platform accounts (`SQLite` data): clone with data, sync, a migration that succeeds, one
//! whose restore silently loses rows, one killed and resumed, one rolled back, and reaping.
//! Failure injection is done with data hooks replaced in the test project (named in each test).

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::Project;

/// Row counts of a local-platform database (read-only).
fn counts(database: &Path) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sqlite3, sys\n\
             c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
             print(json.dumps({t: c.execute('SELECT COUNT(*) FROM ' + t).fetchone()[0] for t in ('customers', 'orders', 'credentials')}))",
        ])
        .arg(database)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs SQL on a local-platform database (to change its data between steps).
fn sql(database: &Path, statement: &str) {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()"])
        .arg(database)
        .arg(statement)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A customer no environment is seeded with.
const NEW_CUSTOMER: &str = "INSERT INTO customers VALUES (9001, 'New', 'new@example.com', 'DE', '2026-11-22');";

fn first_api_key(database: &Path) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sqlite3, sys\nprint(sqlite3.connect(sys.argv[1]).execute('SELECT api_key FROM credentials ORDER BY id').fetchone()[0])"])
        .arg(database)
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A restore hook that kills the `stamp` running it once (right after restoring): the
/// migration dies between two steps of its journal.
const KILLING_RESTORE: &str = "set -e\npython3 scripts/data.py restore\nif [ ! -e \"$STAMP_PROJECT/killed-once\" ]; then\n  touch \"$STAMP_PROJECT/killed-once\"\n  kill -9 \"$PPID\"\nfi";

fn database(project: &Project, instance: &str) -> std::path::PathBuf {
    project.env_dir(instance).join("data.sqlite")
}

fn traffic(project: &Project, instance: &str) -> String {
    let path = project.env_dir(instance).join("service/availability.json");
    let Ok(text) = fs_err::read_to_string(&path) else { return "serving (never changed)".into() };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["traffic"].as_str().unwrap_or_default().to_string()
}

fn snapshots(project: &Project) -> Vec<String> {
    let dir = project.path().join(".stamp/snapshots");
    let mut names: Vec<String> = fs_err::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.retain(|n| n.ends_with(".sqlite"));
    names.sort();
    names
}

#[test]
fn clone_with_data_then_sync() {
    let project = Project::local();
    let deployed = project.commit_all("initial");
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.2.0"]).run().success();
    // The blueprint moves on after local-staging was deployed: the clone must not pick it up.
    let main = "blueprints/local-platform/main.tf.j2";
    project.write(main, &format!("{}\n# a later change\n", project.read(main)));
    project.commit_all("later blueprint change");

    // A target without its own config is refused with a hint.
    let missing = project.tf(["clone", "local-staging", "local-nowhere"]).run().failure(1);
    assert!(missing.stderr.contains("needs its own config"), "{}", missing.stderr);

    let git = common::GitLog::new(&project);
    let clone = project
        .tf(["clone", "local-staging", "local-qa", "--data", "--auto-approve", "--format", "json"])
        .env("PATH", &git.path)
        .run()
        .success();
    // The deployed commit's blueprints come from git's objects: no revision is extracted whole.
    assert!(!git.calls().lines().any(|c| c.contains(" archive ")), "the revision was extracted whole");
    let report: serde_json::Value = serde_json::from_str(&clone.stdout).unwrap();
    assert_eq!(report["version"], format!("1.2.0+{}", &deployed[..12]));
    let rendered = project.read(".stamp/work/local-qa/main.tf");
    assert!(!rendered.contains("a later change"), "local-qa was built from HEAD, not the version local-staging runs");
    // ... with its own config.
    assert!(project.read(".stamp/work/local-qa/dns.tf").contains("\"qa.local.acme.internal\""));
    let data = &report["data"];
    assert_eq!(data["source_stats"], data["target_stats"], "{}", clone.stdout);
    assert_eq!(data["source_stats"]["customers"]["count"], 50);
    assert_eq!(data["differences"], serde_json::json!([]));
    // local-qa has production's three zones, not staging's two: parity says so.
    let parity = serde_json::json!([{"path": "network.azs", "reference": 2, "value": 3}]);
    assert_eq!(report["parity"], parity);
    // The copy holds the source's rows, scrubbed: no live API key survives.
    assert_eq!(counts(&database(&project, "local-qa")), counts(&database(&project, "local-staging")));
    assert!(first_api_key(&database(&project, "local-staging")).starts_with("sk_live_"));
    assert!(first_api_key(&database(&project, "local-qa")).starts_with("sk_test_"));
    // local-qa runs the version local-staging runs, from the same commit.
    let output = project.tf(["output", "local-qa"]).run().success();
    let stamp: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(stamp["environment_version"], report["version"]);
    assert_eq!(traffic(&project, "local-qa"), "serving");
    // Both snapshots (the source's, and the target's own data before) are kept.
    assert_eq!(snapshots(&project).len(), 2, "{:?}", snapshots(&project));

    // Sync at will: new rows in the source reach the target.
    sql(&database(&project, "local-staging"), NEW_CUSTOMER);
    let sync = project.tf(["sync", "local-staging", "local-qa"]).run().success();
    assert!(sync.stdout.contains("statistics equal"), "{}", sync.stdout);
    assert_eq!(counts(&database(&project, "local-qa"))["customers"], 51);

    // A protected target's data is overwritten only with --confirm.
    let refused = project.tf(["sync", "local-qa", "local-prod"]).run().failure(1);
    assert!(refused.stderr.contains("needs `--confirm local-prod`"), "{}", refused.stderr);
}

/// A clone renders the target at the source's version, with that commit's archetypes: what
/// holds data is still what today's archetype says too. A source deployed before the database
/// was listed as stateful must not let the clone replace a protected target's database unasked.
#[test]
fn a_clone_judges_what_holds_data_by_todays_archetype_too() {
    let project = Project::local();
    let archetype = "archetypes/local-platform/archetype.yaml";
    let listed = project.read(archetype);
    project.write(archetype, &listed.replace("stateful_resources:\n  - terraform_data.database\n", ""));
    let template = "blueprints/local-platform/database.tf.j2";
    let original = project.read(template);
    project.write(
        template,
        &original.replace("name = \"{{ config.database.name }}\"", "name = \"{{ config.database.name }}-then\""),
    );
    project.commit_all("the database not listed yet");
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    project.write(archetype, &listed);
    project.write(template, &original);
    project.commit_all("the database listed");
    project.tf(["apply", "local-prod", "--auto-approve", "--version", "1.1.0"]).run().success();
    let before = fs_err::read(database(&project, "local-prod")).unwrap();
    let clone = project.tf(["clone", "local-staging", "local-prod", "--auto-approve"]).run().failure(1);
    assert!(
        clone.stderr.contains("would destroy stateful resources: `terraform_data.database` (replace)"),
        "{}",
        clone.stderr
    );
    assert_eq!(fs_err::read(database(&project, "local-prod")).unwrap(), before, "the database was replaced");
}

#[test]
fn migration_builds_alongside_switches_and_retires() {
    let project = Project::local();
    project.tf(["apply", "local-prod", "--auto-approve", "--version", "1.0.0"]).run().success();
    project.tf(["build", "local-prod", "--version", "1.0.0"]).run().success();
    // Data the new environment's own seeding would not have: only a restore brings it over.
    sql(&database(&project, "local-prod"), NEW_CUSTOMER);
    let before = counts(&database(&project, "local-prod"));
    assert_eq!(before["customers"], 1001);

    let migrate = project.tf(["migrate", "local-prod", "--to-version", "2.0.0", "--auto-approve"]).run().success();
    assert!(
        migrate.stdout.contains("migration of local-prod to 2.0.0 (blue -> green): finished"),
        "{}",
        migrate.stdout
    );
    assert!(migrate.stdout.contains("statistics equal"), "{}", migrate.stdout);
    // The new environment holds the data; the old one is gone; the snapshot is kept.
    assert_eq!(counts(&database(&project, "local-prod-green")), before);
    assert!(!project.env_dir("local-prod").exists(), "the old environment was not retired");
    assert_eq!(snapshots(&project).len(), 1);
    assert_eq!(traffic(&project, "local-prod-green"), "serving");
    // The account now is its new environment: version 2.0.0, no changes to plan.
    let output = project.tf(["output", "local-prod"]).run().success();
    let stamp: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(stamp["environment_version"], "2.0.0+none");
    project.tf(["plan", "local-prod", "--version", "2.0.0"]).run().success();
    // The ledger tells the story: build in green, switch to green, retire blue.
    let ledger = project.read(".stamp/ledger/local-prod.jsonl");
    let records: Vec<serde_json::Value> = ledger.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let story: Vec<(String, String, String)> = records
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or("blue").to_string();
            (text("operation"), text("slot"), text("environment_version"))
        })
        .collect();
    let expected = [
        ("apply", "blue", "1.0.0+none"),
        ("apply", "green", "2.0.0+none"),
        ("switch", "green", "2.0.0+none"),
        ("destroy", "blue", "2.0.0+none"),
    ];
    assert_eq!(story, expected.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())));
    assert!(project.path().join(".stamp/ledger/migrations/done").is_dir());
    // An artifact built for the old slot would run against the retired one's state: refused.
    let old = project.tf(["apply", "--artifact", "dist/local-prod-1.0.0.tar.gz", "--auto-approve"]).run().failure(1);
    assert!(old.stderr.contains("was built for the blue slot of `local-prod`"), "{}", old.stderr);
    assert!(!project.path().join(".stamp/ledger/migrations/local-prod.json").exists());
    // Running it again starts a new migration (back to blue), nothing is left over.
    let resume = project.tf(["migrate", "local-prod", "--resume", "--auto-approve"]).run().failure(1);
    assert!(resume.stderr.contains("no migration of `local-prod` is under way"), "{}", resume.stderr);
}

#[test]
fn migration_whose_restore_loses_rows_stops_and_keeps_everything() {
    let project = Project::local();
    // Failure injection: a restore that silently drops every tenth order.
    project.replace_restore_hook(
        "set -e\npython3 scripts/data.py restore\npython3 -c 'import os, sqlite3; c = sqlite3.connect(os.environ[\"STAMP_OUTPUT_DATABASE_PATH\"]); c.execute(\"DELETE FROM orders WHERE id % 10 = 0\"); c.commit()'",
    );
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    let before = counts(&database(&project, "local-staging"));

    let migrate = project.tf(["migrate", "local-staging", "--to-version", "2.0.0", "--auto-approve"]).run().failure(1);
    assert!(migrate.stdout.contains("STOPPED"), "{}", migrate.stdout);
    assert!(migrate.stdout.contains("orders.count: 150 expected, 135 found"), "{}", migrate.stdout);
    assert!(migrate.stdout.contains("the old environment (blue slot) serves again"), "{}", migrate.stdout);
    // Both environments and the snapshot are intact; the old one serves again, unchanged.
    assert_eq!(counts(&database(&project, "local-staging")), before);
    assert_eq!(counts(&database(&project, "local-staging-green"))["orders"], 135);
    assert_eq!(snapshots(&project).len(), 1);
    assert_eq!(traffic(&project, "local-staging"), "serving");
    // Nothing else may change the account meanwhile.
    let apply = project.tf(["apply", "local-staging", "--auto-approve"]).run().failure(1);
    assert!(apply.stderr.contains("a migration of `local-staging` to 2.0.0 is stopped"), "{}", apply.stderr);
    let sync = project.tf(["sync", "local-staging", "local-qa"]).run().failure(1);
    assert!(sync.stderr.contains("a migration of `local-staging`"), "{}", sync.stderr);
    let again = project.tf(["migrate", "local-staging", "--to-version", "3.0.0", "--auto-approve"]).run().failure(1);
    assert!(again.stderr.contains("--resume"), "{}", again.stderr);
    // Resuming redoes the copy from a fresh snapshot, and stops again on the same loss.
    let resume = project.tf(["migrate", "local-staging", "--resume", "--auto-approve"]).run().failure(1);
    assert!(resume.stdout.contains("orders.count: 150 expected, 135 found"), "{}", resume.stdout);
    assert_eq!(snapshots(&project).len(), 2, "no snapshot is ever deleted");
    assert_eq!(counts(&database(&project, "local-staging")), before);
}

/// Applies local-staging and starts its migration with [`KILLING_RESTORE`]: the `stamp`
/// process dies by SIGKILL right after the restore, before journalling it. The old data's counts.
fn killed_migration(project: &Project) -> serde_json::Value {
    project.replace_restore_hook(KILLING_RESTORE);
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    sql(&database(project, "local-staging"), NEW_CUSTOMER);
    let before = counts(&database(project, "local-staging"));
    let killed = project.tf(["migrate", "local-staging", "--to-version", "2.0.0", "--auto-approve"]).run();
    assert_eq!(killed.code, -1, "stamp was not killed by the hook:\n{}", killed.snapshot());
    assert!(project.env_dir("local-staging-green").exists());
    before
}

#[test]
fn migration_killed_between_steps_resumes() {
    let project = Project::local();
    let before = killed_migration(&project);
    let journal: serde_json::Value =
        serde_json::from_str(&project.read(".stamp/ledger/migrations/local-staging.json")).unwrap();
    let done: Vec<&str> = journal["done"].as_array().unwrap().iter().map(|d| d[0].as_str().unwrap()).collect();
    assert_eq!(done, ["standby", "snapshot", "build"]);
    assert_eq!(traffic(&project, "local-staging"), "standby");

    let resume = project.tf(["migrate", "local-staging", "--resume", "--auto-approve"]).run().success();
    assert!(resume.stdout.contains("finished"), "{}", resume.stdout);
    // The steps done before the kill are not run again.
    assert!(resume.stdout.contains("done: new version built alongside (earlier)"), "{}", resume.stdout);
    // The restore the kill interrupted is run again, now.
    assert!(resume.stdout.contains("done: snapshot restored into the new environment  "), "{}", resume.stdout);
    assert_eq!(snapshots(&project).len(), 1);
    assert_eq!(counts(&database(&project, "local-staging-green")), before);
    assert!(!project.env_dir("local-staging").exists());
}

#[test]
fn migration_killed_between_steps_rolls_back() {
    let project = Project::local();
    let before = killed_migration(&project);

    let rollback = project.tf(["migrate", "local-staging", "--rollback", "--auto-approve"]).run().success();
    assert!(rollback.stdout.contains("rolled back"), "{}", rollback.stdout);
    assert!(!project.env_dir("local-staging-green").exists(), "the new environment was not destroyed");
    assert_eq!(counts(&database(&project, "local-staging")), before);
    assert_eq!(traffic(&project, "local-staging"), "serving");
    assert_eq!(snapshots(&project).len(), 1, "the snapshot is kept");
    // The account is its old self again: same version, nothing to change, free to migrate.
    project.tf(["plan", "local-staging", "--version", "1.0.0"]).run().success();
    assert!(!project.path().join(".stamp/ledger/migrations/local-staging.json").exists());
}

fn time_in(from_now: Duration) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() + from_now).to_string()
}

/// A run stopped between Terraform's apply and its ledger record (a CI job killed during the
/// smoke tests) leaves an environment the ledger does not know: the kill switch destroys it
/// all the same (destroying nothing would be harmless), never keeps it as "not deployed".
#[test]
fn the_kill_switch_destroys_what_the_ledger_does_not_know_deployed() {
    let project = Project::local();
    project.commit_all("initial");
    project
        .tf(["playground", "new", "unrecorded", "--from", "local-staging", "--owner", "ana@acme.example"])
        .args(["--ttl", "1h", "--auto-approve"])
        .run()
        .success();
    assert!(project.env_dir("unrecorded").exists());
    fs_err::remove_file(project.path().join(".stamp/ledger/unrecorded.jsonl")).unwrap();
    let dry = project.tf(["reap", "--dry-run"]).run().success();
    assert!(dry.stdout.contains("unrecorded: kept (not deployed"), "{}", dry.stdout);
    let kill = project.tf(["reap", "--all-ephemeral", "--confirm", "kill-switch"]).run().success();
    assert!(kill.stdout.contains("unrecorded: destroyed (kill switch (not in the ledger"), "{}", kill.stdout);
    assert!(!project.env_dir("unrecorded").exists(), "{}", kill.stdout);
    // Once destroyed, the ledger knows: it is not destroyed again and again. (Its file went
    // with the destroy; one written by hand stays, and is kept from now on.)
    project.add_local_copy("by-hand", 44, "sandbox\nephemeral: true\nttl: 1h\ncreated_at: 2020-01-01T00:00:00Z");
    let first = project.tf(["reap"]).run().success();
    assert!(first.stdout.contains("by-hand: destroyed (expired (not in the ledger"), "{}", first.stdout);
    let again = project.tf(["reap"]).run().success();
    assert!(again.stdout.contains("by-hand: kept (not deployed"), "{}", again.stdout);
}

#[test]
fn playgrounds_are_tagged_and_reaped() {
    let project = Project::local();
    // In git, the development version is the commit's: the same for every run.
    project.commit_all("initial");
    let new = |name: &str, owner: &str, ttl: &str| {
        project
            .tf([
                "playground",
                "new",
                name,
                "--from",
                "local-staging",
                "--owner",
                owner,
                "--ttl",
                ttl,
                "--auto-approve",
            ])
            .run()
            .success()
    };
    let old = new("play-old", "ana@acme.example", "1h");
    assert!(old.stdout.contains("network 10.200.0.0/24, zone play-old.play.local.acme.internal"), "{}", old.stdout);
    new("play-new", "bob@acme.example", "3d");
    let bad =
        project.tf(["playground", "new", "../escape", "--from", "local-staging", "--owner", "x"]).run().failure(1);
    assert!(bad.stderr.contains("invalid playground name `../escape`"), "{}", bad.stderr);
    let file = project.read("fixtures/accounts/playgrounds/play-new.yaml");
    assert!(file.contains("cidr: 10.200.1.0/24") && file.contains("ephemeral: true"), "{file}");
    let tags = project.read(".stamp/work/play-new/stamp_metadata.tf");
    assert!(tags.contains("\"StampOwner\"         = \"bob@acme.example\""), "{tags}");
    // Created when the file says, expiring three days later.
    let created = file.lines().find_map(|l| l.strip_prefix("created_at: ")).unwrap().trim_matches('"');
    let expires = humantime::parse_rfc3339(created).unwrap() + Duration::from_secs(3 * 24 * 3600);
    assert!(tags.contains(&format!("\"StampCreatedAt\"     = \"{created}\"")), "{tags}");
    let expires = humantime::format_rfc3339_seconds(expires);
    assert!(tags.contains(&format!("\"StampExpiresAt\"     = \"{expires}\"")), "{tags}");
    // The tags come from the file, not the clock: planning again changes nothing.
    project.tf(["plan", "play-new"]).run().success();

    // An ephemeral account written by hand, protected; its creation time comes from the ledger.
    project.add_local_copy("guarded", 43, "sandbox\nprotected: true\nephemeral: true\nttl: 1h");
    project.tf(["apply", "guarded", "--auto-approve"]).run().success();
    project.tf(["plan", "guarded"]).run().success();
    project.tf(["apply", "local-staging", "--auto-approve"]).run().success();

    // Tomorrow, both playgrounds would be past their expiry (judged with STAMP_NOW, which only
    // a dry run accepts); the protected and non-ephemeral accounts never are.
    let tomorrow = time_in(Duration::from_secs(26 * 3600));
    let dry = project.tf(["reap", "--dry-run"]).env("STAMP_NOW", &tomorrow).run().success();
    assert!(dry.stdout.contains("play-old: would destroy (expired; owner ana@acme.example"), "{}", dry.stdout);
    assert!(dry.stdout.contains("play-new: kept (not expired yet"), "{}", dry.stdout);
    assert!(dry.stdout.contains("guarded: kept (protected: never reaped"), "{}", dry.stdout);
    assert!(!dry.stdout.contains("local-staging:"), "{}", dry.stdout);
    assert!(project.env_dir("play-old").exists(), "a dry run destroyed something");
    let refused = project.tf(["reap"]).env("STAMP_NOW", &tomorrow).run().failure(1);
    assert!(refused.stderr.contains("only `stamp reap --dry-run`"), "{}", refused.stderr);

    // Now: play-old was created two hours ago (its file says when, edited), so it has expired.
    let path = "fixtures/accounts/playgrounds/play-old.yaml";
    let created = project.read(path).lines().find(|l| l.starts_with("created_at:")).unwrap().to_string();
    let earlier = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(2 * 3600));
    project.write(path, &project.read(path).replace(&created, &format!("created_at: \"{earlier}\"")));
    let reap = project.tf(["reap"]).run().success();
    assert!(reap.stdout.contains("play-old: destroyed (expired"), "{}", reap.stdout);
    // Its file was edited after `playground new` wrote it: moved out of the accounts, kept.
    assert!(
        reap.stdout.contains("kept fixtures/accounts/playgrounds/play-old.yaml as .stamp/reaped/play-old.yaml"),
        "{}",
        reap.stdout
    );
    assert!(!project.env_dir("play-old").exists());
    assert!(!project.path().join(path).exists());
    assert!(project.read(".stamp/reaped/play-old.yaml").contains(&earlier.to_string()), "the edit is kept");
    for kept in ["play-new", "guarded", "local-staging"] {
        assert!(project.env_dir(kept).exists(), "{kept} was reaped");
    }

    // The kill switch needs its word, then takes every ephemeral account but protected ones.
    let unconfirmed = project.tf(["reap", "--all-ephemeral"]).run().failure(1);
    assert!(unconfirmed.stderr.contains("--confirm kill-switch"), "{}", unconfirmed.stderr);
    let kill = project.tf(["reap", "--all-ephemeral", "--confirm", "kill-switch"]).run().success();
    assert!(kill.stdout.contains("play-new: destroyed (kill switch"), "{}", kill.stdout);
    // Its file is as `playground new` wrote it: removed.
    assert!(kill.stdout.contains("removed fixtures/accounts/playgrounds/play-new.yaml"), "{}", kill.stdout);
    assert!(!project.path().join("fixtures/accounts/playgrounds/play-new.yaml").exists());
    assert!(!project.path().join(".stamp/reaped/play-new.yaml").exists());
    assert!(!project.env_dir("play-new").exists());
    assert!(project.env_dir("guarded").exists() && project.env_dir("local-staging").exists());
}

#[test]
fn migration_whose_new_version_does_not_render_stops_and_shows_where() {
    let project = Project::local();
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.0.0"]).run().success();
    let before = counts(&database(&project, "local-staging"));
    // The blueprint moves on with a mistake: the new version cannot be rendered.
    let main = "blueprints/local-platform/main.tf.j2";
    project.write(main, &format!("{}\n# {{{{ config.no_such_key.deeper }}}}\n", project.read(main)));

    let migrate = project.tf(["migrate", "local-staging", "--to-version", "2.0.0", "--auto-approve"]).run().failure(1);
    assert!(migrate.stdout.contains("STOPPED"), "{}", migrate.snapshot());
    assert!(migrate.stdout.contains("the old environment (blue slot) serves again"), "{}", migrate.snapshot());
    // The render error keeps its file, line and snippet, not flattened into the step's line.
    assert!(migrate.stderr.contains("blueprints/local-platform/main.tf.j2:"), "{}", migrate.snapshot());
    assert!(migrate.stderr.contains("no_such_key"), "{}", migrate.snapshot());
    assert_eq!(counts(&database(&project, "local-staging")), before);
    assert_eq!(traffic(&project, "local-staging"), "serving");
    // Rolling back destroys whatever of the new environment exists, rendered as it is now: it
    // too needs the blueprint fixed, and says so with the same diagnostics.
    let broken = project.tf(["migrate", "local-staging", "--rollback", "--auto-approve"]).run().failure(1);
    assert!(broken.stderr.contains("no_such_key"), "{}", broken.snapshot());
    assert_eq!(traffic(&project, "local-staging"), "serving");
    project.write(main, &project.read(main).replace("\n# {{ config.no_such_key.deeper }}\n", ""));
    let rollback = project.tf(["migrate", "local-staging", "--rollback", "--auto-approve"]).run().success();
    assert!(rollback.stdout.contains("rolled back"), "{}", rollback.stdout);
    assert_eq!(counts(&database(&project, "local-staging")), before);
}

/// The account files may live outside the project (`accounts:` an absolute path or one with
/// `..`): a clone reads them where they are and never writes or removes anything there.
#[test]
fn a_clone_leaves_an_accounts_folder_outside_the_project_alone() {
    for relative in [false, true] {
        let project = Project::local();
        let outside = tempfile::tempdir().unwrap();
        let accounts = outside.path().join("accounts");
        fs_err::rename(project.path().join("fixtures/accounts"), &accounts).unwrap();
        let setting = if relative {
            format!("../{}/accounts", outside.path().file_name().unwrap().to_str().unwrap())
        } else {
            accounts.display().to_string()
        };
        let settings =
            project.read("stamp.yaml").replace("accounts: fixtures/accounts", &format!("accounts: {setting}"));
        project.write("stamp.yaml", &settings);
        project.commit_all("initial");
        project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.2.0"]).run().success();
        let before = common::tree_text(&accounts);
        project.tf(["clone", "local-staging", "local-qa", "--auto-approve"]).run().success();
        assert_eq!(common::tree_text(&accounts), before, "{setting}: the accounts folder changed");
        assert!(project.read(".stamp/work/local-qa/dns.tf").contains("\"qa.local.acme.internal\""), "{setting}");
    }
}

/// Only the blueprint version is the source's: where the target's state is kept (and its
/// ledger, snapshots and providers) is what `stamp.yaml` says now, not at the source's commit.
#[test]
fn a_clone_keeps_its_state_where_stamp_yaml_says_now() {
    let project = Project::local();
    project.commit_all("initial");
    project.tf(["apply", "local-staging", "--auto-approve", "--version", "1.2.0"]).run().success();
    let settings = project.read("stamp.yaml").replace("dir: .stamp/state", "dir: .stamp/state-moved");
    project.write("stamp.yaml", &settings);
    project.commit_all("the local state moves");
    project.tf(["clone", "local-staging", "local-qa", "--auto-approve"]).run().success();
    assert!(project.path().join(".stamp/state-moved/local-qa/terraform.tfstate").is_file());
    assert!(!project.path().join(".stamp/state/local-qa").exists(), "the clone kept its state where it used to be");
}

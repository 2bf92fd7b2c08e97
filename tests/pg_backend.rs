//! The `pg` state backend against a real `PostgreSQL` server (the one
//! `scripts/install-postgres.sh` starts; `make test` passes its connection string in
//! `STAMP_TEST_PG`). Two copies of the project stand for two machines that share one
//! environment folder and one remote state: both apply the same account at the same time,
//! Terraform's lock in `PostgreSQL` lets one of them through, and nothing is lost. The test
//! works in a database of its own (the server's role may create databases).

mod common;

use std::process::Command;
use std::sync::Barrier;

use common::pg::Database;
use common::{Output, Project};

/// A local-platform project whose archetype keeps its state in `PostgreSQL`, with one more
/// account (`name`, a copy of local-staging in its own network and zone), rendering its
/// environments under `envs` (the same folder for both machines).
fn machine(conn: &str, name: &str, envs: Option<&Project>) -> Project {
    let project = Project::local();
    let path = "archetypes/local-platform/archetype.yaml";
    let mut archetype = project.read(path);
    if let Some(first) = envs {
        let own = format!("root_dir: {}", project.path().join("envs").display());
        let shared = format!("root_dir: {}", first.path().join("envs").display());
        assert!(archetype.contains(&own), "{archetype}");
        archetype = archetype.replace(&own, &shared);
    }
    assert!(archetype.contains("provider: none\n"), "{archetype}");
    project.write(path, &archetype.replace("provider: none\n", "provider: none\nbackend: pg\n"));

    let stamp_yaml = project.read("stamp.yaml");
    assert!(stamp_yaml.contains("\nstate:\n"), "{stamp_yaml}");
    let pg = format!("\nstate:\n  pg:\n    conn_str: {}\n", serde_json::to_string(conn).unwrap());
    project.write("stamp.yaml", &stamp_yaml.replace("\nstate:\n", &pg));

    let account = project
        .read("fixtures/accounts/local-staging.yaml")
        .replace("10.41.", "10.201.")
        .replace("staging.local.acme.internal", &format!("{name}.local.acme.internal"));
    project.write(&format!("fixtures/accounts/{name}.yaml"), &format!("name: {name}\n{account}"));
    project
}

/// `stamp apply` on both machines at once; Stamp retries a lost lock after 1s, 2s, 4s.
fn apply_together(machines: [&Project; 2], account: &str) -> [Output; 2] {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let runs = machines.map(|project| {
            let barrier = &barrier;
            scope.spawn(move || {
                let run = project
                    .tf(["apply", account, "--auto-approve", "--version", "1.0.0"])
                    .env("STAMP_RETRY_DELAY", "1s");
                barrier.wait();
                run.run()
            })
        });
        runs.map(|run| run.join().expect("apply thread"))
    })
}

fn customers(database: &std::path::Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from customers').fetchone()[0])",
        ])
        .arg(database)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn two_machines_apply_one_account_at_once() {
    let database = Database::create();
    let conn = database.conn();
    let account = format!("pg-{}", database.name.trim_start_matches("stamp_test_").replace('_', "-"));
    let schema = format!("stamp_{}", account.replace('-', "_"));

    let first = machine(&conn, &account, None);
    let second = machine(&conn, &account, Some(&first));
    let rendered = |project: &Project| {
        project.tf(["render", &account, "--out", "rendered", "--version", "1.0.0"]).run().success();
        common::tree_text(&project.path().join("rendered"))
    };
    let backend = rendered(&first);
    assert!(backend.contains(&format!("backend \"pg\" {{\n    schema_name = \"{schema}\"")), "{backend}");
    assert_eq!(backend, rendered(&second), "the two machines render different Terraform");

    // The account's schema and `states` table exist before the race, as for any account that
    // was planned once: Terraform's pg backend creates them check-then-create on `init`, and two
    // first `init`s at the same moment can fail with `duplicate key value violates unique
    // constraint "pg_namespace_nspname_index"` (not a lock error, and not retried by Stamp).
    let plan = first.tf(["plan", &account, "--version", "1.0.0"]).run().failure(2);
    assert!(plan.stdout.contains("5 to add"), "{}", plan.stdout);
    assert_eq!(database.psql(&format!("SELECT count(*) FROM \"{schema}\".states")), "0", "a plan wrote state");

    let [one, two] = apply_together([&first, &second], &account);
    let report = format!("== first machine\n{}\n== second machine\n{}", one.snapshot(), two.snapshot());
    let machines = [(&first, &one), (&second, &two)];

    // Terraform's own lock in PostgreSQL was met, by one run or the other (the machines share
    // no Stamp lock: each has its own .stamp/). Stamp passes `-lock-timeout`, so the loser
    // waits on the lock quietly: then its plan finds no changes, or its apply finds its plan
    // stale and is refused.
    let lock_met = machines.iter().any(|(project, out)| {
        let log = fs_err::read_to_string(project.path().join(format!(".stamp/logs/{account}.log"))).unwrap_or_default();
        log.contains("Error acquiring the state lock")
            || out.stdout.contains("retried: lock")
            || out.stdout.contains("Saved plan is stale")
            || (out.code == 0 && out.stdout.contains(&format!("no changes: {account}")))
    });
    assert!(lock_met, "neither run met Terraform's state lock:\n{report}");

    // One applied; the other found nothing left to do, or failed saying why.
    let applied = format!("{account}: applied");
    let winners: Vec<_> = machines.iter().filter(|(_, out)| out.code == 0 && out.stdout.contains(&applied)).collect();
    assert_eq!(winners.len(), 1, "expected exactly one run to apply:\n{report}");
    let (_, loser) = machines.iter().find(|(_, out)| !(out.code == 0 && out.stdout.contains(&applied))).unwrap();
    match loser.code {
        // It waited on the lock (Stamp's retries) and then planned against the applied state.
        0 => assert!(loser.stdout.contains(&format!("no changes: {account}")), "{report}"),
        // Its apply met the lock (applies are not retried), or, had it planned in the moment
        // between the winner's plan and apply, found its plan stale: refused either way.
        1 => assert!(
            loser.stdout.contains("Error acquiring the state lock") || loser.stdout.contains("Saved plan is stale"),
            "the losing run failed without a clear lock message:\n{report}"
        ),
        _ => panic!("unexpected exit code:\n{report}"),
    }

    // Nothing is lost: both machines see the applied state, with nothing left to do.
    for project in [&first, &second] {
        project.tf(["plan", &account, "--version", "1.0.0"]).run().success();
        let output = project.tf(["output", &account, "--version", "1.0.0"]).run().success();
        let stamp: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
        assert_eq!(stamp["environment_version"], "1.0.0+none");
        assert!(!project.path().join(".stamp/state").join(&account).exists(), "state was written to the disk");
    }
    let sqlite = first.env_dir(&account).join("data.sqlite");
    assert!(sqlite.is_file(), "no database after apply:\n{report}");
    assert_eq!(customers(&sqlite), "50", "the seeded customers are not all there");

    // The state lives in PostgreSQL, in the account's schema.
    let states = database.psql(&format!("SELECT name FROM \"{schema}\".states ORDER BY name"));
    assert_eq!(states, "default");
    let resources = database.psql(
        &format!(
            "SELECT count(*) FROM \"{schema}\".states, json_array_elements(data::json->'resources') r WHERE r->>'type' = 'terraform_data'"
        ),
    );
    assert_eq!(resources, "5", "the state in PostgreSQL does not hold the five resources");

    // Destroyed from the other machine, through the shared state.
    let destroy = second.tf(["destroy", &account, "--auto-approve", "--version", "1.0.0"]).run().success();
    assert!(destroy.stdout.contains(&format!("{account}: destroyed")), "{}", destroy.stdout);
    assert!(!first.env_dir(&account).exists(), "destroy left the environment");
    let left = database
        .psql(&format!("SELECT coalesce(json_array_length(data::json->'resources'), 0) FROM \"{schema}\".states"));
    assert_eq!(left, "0", "resources left in the state after destroy");
}

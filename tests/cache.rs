//! The build cache (`.stamp/cache/`) never changes what Stamp says or writes: after random
//! edits of every input, cached runs give byte-identical output, trees, artifacts and exit
//! codes to `--no-cache` runs. A damaged, foreign or stale cache is rebuilt, never trusted, and
//! runs sharing the cache concurrently never see half of it.

mod common;

use std::path::Path;

use common::{Output, Project, tree_text};

/// A small deterministic generator (xorshift64*), so a failing sequence can be replayed from
/// its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const ACCOUNTS: &str = "fixtures/accounts";

/// An ephemeral account whose lifetime comes from its file (the clock edit moves it).
const EPHEMERAL: &str = "archetype: local-platform\nenvironment: playground\nephemeral: true\nowner: ana@acme.example\nttl: 8h\ncreated_at: \"2026-11-30T08:00:00Z\"\ntags:\n  CostCenter: platform\nnetwork:\n  cidr: 10.77.0.0/16\n  azs: 1\ndns:\n  zone: ana.play.local.acme.internal\n  records: []\nservice:\n  name: orders\n  replicas: 1\n  port: 18777\ndatabase:\n  name: orders\n  seed_customers: 5\n";

fn files_in(dir: &Path, ext: &[&str]) -> Vec<String> {
    let mut found: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| e.path().extension().and_then(|x| x.to_str()).is_some_and(|x| ext.contains(&x)))
        .map(|e| e.path().display().to_string())
        .collect();
    found.sort();
    found
}

fn account_names(project: &Project) -> Vec<String> {
    files_in(&project.path().join(ACCOUNTS), &["yaml"])
        .iter()
        .map(|p| Path::new(p).file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Applies one random edit and says which.
fn edit(project: &Project, rng: &mut Rng, step: usize) -> String {
    let root = project.path();
    let accounts = files_in(&root.join(ACCOUNTS), &["yaml"]);
    let rewrite = |path: &str, change: &dyn Fn(String) -> String| {
        let text = fs_err::read_to_string(path).unwrap();
        fs_err::write(path, change(text)).unwrap();
    };
    match rng.below(12) {
        0 | 1 if !accounts.is_empty() => {
            let path = rng.pick(&accounts).clone();
            let n = rng.below(9) + 1;
            rewrite(&path, &|text| {
                let mut done = false;
                text.lines()
                    .map(|line| {
                        let trimmed = line.trim_start();
                        if !done
                            && let Some((key, value)) = trimmed.split_once(": ")
                            && value.parse::<u64>().is_ok()
                            && key != "account_id"
                        {
                            done = true;
                            return format!("{}{key}: {n}", &line[..line.len() - trimmed.len()]);
                        }
                        line.to_string()
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n"
            });
            format!("a number in {path} set to {n}")
        }
        2 if !accounts.is_empty() => {
            let path = rng.pick(&accounts).clone();
            rewrite(&path, &|text| format!("{text}replicsa: 2\n"));
            format!("a misspelt key added to {path}")
        }
        3 => {
            let schemas = files_in(&root.join("archetypes"), &["json"]);
            let path = rng.pick(&schemas).clone();
            let broken = rng.below(5) == 0;
            rewrite(&path, &|text| {
                if broken {
                    text.replacen('{', "{,", 1)
                } else {
                    text.replacen("\"description\": \"", &format!("\"description\": \"(edit {step}) "), 1)
                }
            });
            format!("schema {path} {}", if broken { "broken" } else { "described" })
        }
        4 | 5 => {
            let templates = files_in(&root.join("blueprints"), &["j2", "tf"]);
            let path = rng.pick(&templates).clone();
            let broken = path.ends_with(".j2") && rng.below(4) == 0;
            rewrite(&path, &|text| {
                if broken { format!("{text}{{{{ config.no_such_key }}}}\n") } else { format!("{text}# edit {step}\n") }
            });
            format!("blueprint file {path} {}", if broken { "broken" } else { "commented" })
        }
        6 => {
            rewrite(&root.join("stamp.yaml").display().to_string(), &|text| {
                text.replacen("Organisation: acme", &format!("Organisation: acme-{step}"), 1)
            });
            "stamp.yaml defaults".to_string()
        }
        7 if accounts.len() > 3 => {
            let path = rng.pick(&accounts).clone();
            fs_err::remove_file(&path).unwrap();
            format!("{path} deleted")
        }
        8 if !accounts.is_empty() => {
            let from = rng.pick(&accounts).clone();
            let to = root.join(ACCOUNTS).join(format!("added-{step}.yaml"));
            let unique = rng.below(2) == 0;
            let text = fs_err::read_to_string(&from).unwrap();
            let text = if unique {
                // Its own name and zone (network and id may still clash).
                text.lines()
                    .filter(|l| !l.starts_with("name:"))
                    .map(|l| l.replace("zone: ", &format!("zone: added{step}.")))
                    .collect::<Vec<_>>()
                    .join("\n")
                    + "\n"
            } else {
                text
            };
            fs_err::write(&to, text).unwrap();
            format!("{} added as a copy of {from}", to.display())
        }
        9 if !accounts.is_empty() => {
            let from = rng.pick(&accounts).clone();
            let to = root.join(ACCOUNTS).join(format!("renamed-{step}.yaml"));
            fs_err::rename(&from, &to).unwrap();
            format!("{from} renamed to {}", to.display())
        }
        10 => {
            let path = root.join(ACCOUNTS).join("ana-play.yaml");
            let day = 1 + rng.below(28);
            fs_err::write(&path, EPHEMERAL.replace("2026-11-30", &format!("2026-11-{day:02}"))).unwrap();
            format!("the ephemeral account created on day {day}")
        }
        _ => {
            project.git(&["checkout", "--", "."]);
            project.git(&["clean", "-qfd", "--", ACCOUNTS]);
            "everything restored to the commit".to_string()
        }
    }
}

/// Exit code, stdout and stderr, with the per-side folder names made equal.
fn normalised(out: &Output, side: &str) -> String {
    let text = format!("exit {}\n--- stdout\n{}--- stderr\n{}", out.code, out.stdout, out.stderr);
    text.replace(&format!("out-{side}"), "out-X").replace(&format!("dist-{side}"), "dist-X")
}

/// Runs `args` with the cache and without it (each side with its own output folders) and
/// checks they say the same.
fn same(project: &Project, args: &[String], context: &str) {
    let run = |side: &str| {
        let args: Vec<String> = args.iter().map(|a| a.replace("{side}", side)).collect();
        let mut run = project.stamp(&args).env("STAMP_VERSION", "1.0.0");
        if side == "u" {
            run = run.env("STAMP_NO_CACHE", "1");
        }
        normalised(&run.run(), side)
    };
    let (cached, uncached) = (run("c"), run("u"));
    assert_eq!(cached, uncached, "`stamp {}` differs with the cache, after: {context}", args.join(" "));
}

fn differential(seed: u64, steps: usize) {
    let project = Project::example();
    // Without the invalid fixtures' clutter: they are loaded only when named.
    project.write(&format!("{ACCOUNTS}/ana-play.yaml"), EPHEMERAL);
    let base = project.commit_all("base");
    let mut rng = Rng(seed);
    let mut history = Vec::new();
    for step in 0..steps {
        history.push(edit(&project, &mut rng, step));
        let context = format!("seed {seed}, edits: {history:#?}");
        let names = account_names(&project);
        let one = if names.is_empty() { "production".to_string() } else { rng.pick(&names).clone() };
        let s = |args: &[&str]| args.iter().map(|a| (*a).to_string()).collect::<Vec<_>>();
        same(&project, &s(&["check"]), &context);
        same(&project, &s(&["check", &one]), &context);
        same(&project, &s(&["render", "--all", "--out", "out-{side}"]), &context);
        let (cached, uncached) = (project.path().join("out-c"), project.path().join("out-u"));
        assert_eq!(tree_text(&cached), tree_text(&uncached), "rendered trees differ after: {context}");
        same(&project, &s(&["affected", "--since", &base, "--format", "json"]), &context);
        same(&project, &s(&["diff", &format!("{one}@{base}"), &one]), &context);
        if step % 3 == 0 {
            same(&project, &s(&["build", &one, "--out", "dist-{side}"]), &context);
            let artifacts = |side: &str| {
                let dir = project.path().join(format!("dist-{side}"));
                files_in(&dir, &["gz"])
                    .iter()
                    .map(|p| (Path::new(p).file_name().unwrap().to_owned(), fs_err::read(p).unwrap()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(artifacts("c"), artifacts("u"), "artifacts differ after: {context}");
        }
    }
}

#[test]
fn cached_runs_equal_uncached_runs_after_random_edits() {
    let seeds: Vec<u64> = match std::env::var("STAMP_CACHE_SEED") {
        Ok(seed) => vec![seed.parse().expect("a number")],
        Err(_) => vec![0x5eed_0001, 0x5eed_0002],
    };
    for seed in seeds {
        differential(seed, 14);
    }
}

/// A way to damage a cache file: its bytes from the good ones.
type Damage = Box<dyn Fn(&[u8]) -> Vec<u8>>;

/// The files of the project's cache index (its shards), with their bytes.
fn index(project: &Project) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let dir = project.path().join(".stamp/cache");
    let mut shards: Vec<(std::path::PathBuf, Vec<u8>)> = fs_err::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("index-")))
        .map(|path| {
            let bytes = fs_err::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    shards.sort();
    assert!(!shards.is_empty(), "an index is written");
    shards
}

#[test]
fn a_damaged_or_foreign_cache_is_rebuilt_not_trusted() {
    let project = Project::example();
    // A fixed version: outside git the development version is the time of the run.
    let check = |options: &[&str]| project.stamp(options.iter().chain(&["check"])).env("STAMP_VERSION", "1.0.0");
    // Files changed within a second of a run are read again by the next (and their records
    // renewed): these are older, so a complete index is left as it is.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let expected = check(&["--no-cache"]).run().snapshot();
    assert_eq!(check(&[]).run().snapshot(), expected);
    let good = index(&project);
    for (_, bytes) in &good {
        assert!(bytes.starts_with(b"stamp-cache/5 index "));
    }
    let damaged: Vec<(&str, Damage)> = vec![
        ("empty", Box::new(|_| Vec::new())),
        ("torn", Box::new(|good| good[..good.len() / 2].to_vec())),
        (
            "a flipped byte",
            Box::new(|good| {
                let mut bytes = good.to_vec();
                let last = bytes.len() - 2;
                bytes[last] ^= 1;
                bytes
            }),
        ),
        (
            "another Stamp's",
            Box::new(|good| {
                let header_end = good.iter().position(|&b| b == b'\n').unwrap();
                let mut bytes = b"stamp-cache/5 index 0.0.1+1.2\n".to_vec();
                bytes.extend_from_slice(&good[header_end + 1..]);
                bytes
            }),
        ),
        ("not a cache", Box::new(|_| b"{\"files\": {}, \"loads\": {}}".to_vec())),
        (
            "one byte longer",
            Box::new(|good| {
                let mut bytes = good.to_vec();
                bytes.push(0);
                bytes
            }),
        ),
        (
            "two different bytes swapped",
            Box::new(|good| {
                let mut bytes = good.to_vec();
                let last = bytes.len() - 1;
                let other = (0..last).rev().find(|&i| bytes[i] != bytes[last]).unwrap();
                bytes.swap(other, last);
                bytes
            }),
        ),
    ];
    for (what, damage) in damaged {
        // Every file of the index damaged alike.
        for (path, bytes) in &good {
            fs_err::write(path, damage(bytes)).unwrap();
        }
        assert_eq!(check(&[]).run().snapshot(), expected, "with {what} index");
        // Rebuilt whole: the next run finds everything in it and leaves it as it is.
        let rebuilt = index(&project);
        for (_, bytes) in &rebuilt {
            assert!(bytes.starts_with(b"stamp-cache/5 index "), "the {what} index is rebuilt");
        }
        assert_eq!(check(&[]).run().snapshot(), expected, "after the {what} index");
        assert!(index(&project) == rebuilt, "the index rebuilt after the {what} one is complete");
    }
    // One damaged shard among good ones: only it is rebuilt, the others are left as they are.
    let good = index(&project);
    let (damaged_path, damaged_bytes) = good.iter().find(|(_, bytes)| bytes.len() > 200).expect("a shard with records");
    let mut bytes = damaged_bytes.clone();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    fs_err::write(damaged_path, &bytes).unwrap();
    assert_eq!(check(&[]).run().snapshot(), expected, "with one damaged shard");
    for ((path, before), (_, after)) in good.iter().zip(&index(&project)) {
        if path == damaged_path {
            assert!(after.starts_with(b"stamp-cache/5 index ") && *after != bytes, "the damaged shard is rebuilt");
        } else {
            assert_eq!(before, after, "`{}` was rewritten", path.display());
        }
    }
    let rebuilt = index(&project);
    assert_eq!(check(&[]).run().snapshot(), expected);
    assert!(index(&project) == rebuilt, "the index rebuilt after one damaged shard is complete");
    // An account that breaks after a clean cached check: its new content gets new keys.
    project.write(
        &format!("{ACCOUNTS}/qa.yaml"),
        &project.read(&format!("{ACCOUNTS}/qa.yaml")).replace("azs: 2", "azs: 1"),
    );
    let broken = check(&["--no-cache"]).run();
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    assert_eq!(check(&[]).run().snapshot(), broken.snapshot());
}

#[test]
fn an_edit_that_keeps_size_and_modification_time_is_seen() {
    let project = Project::example();
    let file = project.path().join(ACCOUNTS).join("staging.yaml");
    // Old enough that the cache trusts its stat.
    let touch = |args: &[&str]| {
        assert!(std::process::Command::new("touch").args(args).arg(&file).status().unwrap().success());
    };
    touch(&["-d", "2026-01-01T00:00:00Z"]);
    // The file's change time is now: a run more than a second later trusts its stat.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    project.stamp(["check"]).run().success();
    project.stamp(["render", "staging", "--out", "c"]).env("STAMP_VERSION", "1.0.0").run().success();
    // Same length, same mtime, another value (only the change time moves, which no tool can set).
    let text = fs_err::read_to_string(&file).unwrap();
    assert!(text.contains("desired_size: 3"), "{text}");
    fs_err::write(&file, text.replace("desired_size: 3", "desired_size: 4")).unwrap();
    touch(&["-d", "2026-01-01T00:00:00Z"]);
    let expected =
        project.stamp(["--no-cache", "render", "staging", "--out", "u"]).env("STAMP_VERSION", "1.0.0").run().success();
    let cached = project.stamp(["render", "staging", "--out", "c"]).env("STAMP_VERSION", "1.0.0").run().success();
    assert_eq!(cached.snapshot().replace("/c`", "/u`"), expected.snapshot());
    let tree = tree_text(&project.path().join("c"));
    assert_eq!(tree, tree_text(&project.path().join("u")));
    assert!(tree.contains("desired_size = 4"), "{tree}");
}

/// The cache's files are bound to the key account files' digests are taken with: under another
/// key (a CI secret, a key file written by hand, with its newline) no record taken with the
/// first is trusted, and every command works.
#[test]
fn another_cache_key_finds_no_cache_and_works() {
    let project = Project::example();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(1100));
    pause();
    project.stamp(["check"]).run().success();
    pause();
    project.stamp(["check"]).run().success();
    for _ in 0..2 {
        project.stamp(["render", "qa"]).env("STAMP_CACHE_KEY", "ci-secret").run().success();
    }
    // The header of every index file names the key's fingerprint: the same for runs under one
    // key, another under another.
    let headers = || -> std::collections::BTreeSet<String> {
        index(&project)
            .iter()
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).lines().next().unwrap().to_string())
            .collect()
    };
    let under_secret = headers();
    project.write(".stamp/cache-key", &format!("{}\n", "Q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="));
    let mut seen = Vec::new();
    for _ in 0..2 {
        project.stamp(["render", "qa"]).run().success();
        project.stamp(["check", "qa"]).run().success();
        seen.push(headers());
    }
    assert_eq!(
        project.read(".stamp/cache-key"),
        format!("{}\n", "Q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s="),
        "a kept key is kept"
    );
    assert_eq!(seen[0], seen[1], "the kept key is read, not replaced by one for each run");
    // A key file that holds no key is said, never silently replaced by a key for each run.
    project.write(".stamp/cache-key", "not a key\n");
    let out = project.stamp(["check", "qa"]).run().success();
    assert!(out.stderr.contains("warning: `.stamp/cache-key` holds no key"), "{}", out.stderr);
    assert_eq!(project.read(".stamp/cache-key"), "not a key\n");
    assert!(!seen[0].is_subset(&under_secret), "{seen:?} {under_secret:?}");
}

#[test]
fn another_stamp_build_does_not_use_the_cache_of_this_one() {
    let project = Project::example();
    project.stamp(["check"]).run().success();
    let before = index(&project);
    // The same version, rebuilt: another executable (size and time).
    let other = project.path().join("stamp-rebuilt");
    fs_err::copy(env!("CARGO_BIN_EXE_stamp"), &other).unwrap();
    assert!(std::process::Command::new("touch").args(["-d", "2020-01-01"]).arg(&other).status().unwrap().success());
    let out = std::process::Command::new(&other).arg("check").current_dir(project.path()).output().unwrap();
    let expected = project.stamp(["--no-cache", "check"]).run();
    assert_eq!(String::from_utf8_lossy(&out.stderr), expected.stderr);
    let after = index(&project);
    let header =
        |bytes: &[u8]| String::from_utf8_lossy(&bytes[..bytes.iter().position(|&b| b == b'\n').unwrap()]).into_owned();
    assert_ne!(header(&after[0].1), header(&before[0].1), "the rebuilt Stamp wrote its own index");
}

#[test]
fn concurrent_runs_sharing_the_cache_agree() {
    let project = Project::example();
    let qa = project.read(&format!("{ACCOUNTS}/qa.yaml"));
    for round in 0..3 {
        // Each round changes an input, so every run rewrites the index.
        project.write(
            &format!("{ACCOUNTS}/qa.yaml"),
            &qa.replace("CostCenter:", &format!("Round: \"{round}\"\n  CostCenter:")),
        );
        let expected = project.stamp(["--no-cache", "check"]).run().snapshot();
        let runs: Vec<_> = (0..4).map(|_| project.stamp(["check"]).spawn()).collect();
        for run in runs {
            let out = run.wait_with_output().unwrap();
            let snapshot = format!(
                "exit: {}\n--- stdout\n{}--- stderr\n{}",
                out.status.code().unwrap(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(common::redact(&snapshot, project.path()), expected, "round {round}");
        }
        assert_eq!(project.stamp(["check"]).run().snapshot(), expected);
        assert!(expected.starts_with("exit: 0"), "{expected}");
    }
}

#[test]
fn render_all_rewrites_only_changed_trees_and_removes_trees_of_removed_accounts() {
    let project = Project::example();
    let render = || project.stamp(["render", "--all"]).env("STAMP_VERSION", "1.0.0").run().success();
    render();
    let build = project.path().join("build");
    let mtime =
        |account: &str| fs_err::metadata(build.join(account).join(".stamp-rendered")).unwrap().modified().unwrap();
    let (staging, qa) = (mtime("staging"), mtime("qa"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    project.write(
        &format!("{ACCOUNTS}/qa.yaml"),
        &project.read(&format!("{ACCOUNTS}/qa.yaml")).replace("CostCenter:", "Team: qa\n  CostCenter:"),
    );
    fs_err::remove_file(project.path().join(ACCOUNTS).join("demo.yaml")).unwrap();
    // A folder Stamp did not write is never removed.
    project.write("build/notes/readme.txt", "mine");
    let out = render();
    assert_eq!(mtime("staging"), staging, "an unchanged tree is not rewritten");
    assert_ne!(mtime("qa"), qa, "a changed tree is rewritten");
    assert!(!build.join("demo").exists(), "the tree of a removed account is removed");
    assert!(
        out.stderr.contains("removed `") && out.stderr.contains("demo`: its account no longer exists"),
        "{}",
        out.stderr
    );
    assert_eq!(project.read("build/notes/readme.txt"), "mine");
    // A hand edit of a rendered file is undone, with the cache as without it.
    let main = build.join("staging").join("main.tf");
    let files = files_in(&build.join("staging"), &["tf"]);
    let edited = if main.exists() { main.display().to_string() } else { files[0].clone() };
    fs_err::write(&edited, "# edited by hand\n").unwrap();
    render();
    assert_ne!(fs_err::read_to_string(&edited).unwrap(), "# edited by hand\n");
}

#[test]
fn render_all_removes_only_what_it_wrote_for_accounts_that_are_gone() {
    let project = Project::example();
    let render = |args: &[&str]| project.stamp(["render"].iter().chain(args)).env("STAMP_VERSION", "1.0.0").run();
    // qa's file renamed: it still says `name: qa`, so its tree is still its account's.
    fs_err::rename(project.path().join(ACCOUNTS).join("qa.yaml"), project.path().join(ACCOUNTS).join("quality.yaml"))
        .unwrap();
    render(&["--all"]).success();
    // A render of one account into a folder of another name, beside the others.
    render(&["production", "--out", "build/prod-hotfix"]).success();
    // While an account file does not load, nothing is removed: it may be the one a tree is for.
    let quality = project.path().join(ACCOUNTS).join("quality.yaml");
    let text = fs_err::read_to_string(&quality).unwrap();
    fs_err::write(&quality, format!("{text}oops: [\n")).unwrap();
    let out = render(&["--all"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(project.path().join("build/qa").is_dir(), "{}", out.stderr);
    fs_err::write(&quality, text).unwrap();
    // Gone for good: demo's tree (with a `.terraform` folder, which Stamp did not write),
    // loadtest's (with a file moved in at once, with an old time, as `mv`, `cp -p` and `tar`
    // leave it) and staging's (only Stamp's files).
    fs_err::create_dir_all(project.path().join("build/demo/.terraform")).unwrap();
    let old = project.path().join("old-notes.md");
    fs_err::write(&old, "older than the tree\n").unwrap();
    fs_err::File::open(&old).unwrap().file().set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    fs_err::rename(&old, project.path().join("build/loadtest/old-notes.md")).unwrap();
    for gone in ["demo.yaml", "staging.yaml", "loadtest.yaml"] {
        fs_err::remove_file(project.path().join(ACCOUNTS).join(gone)).unwrap();
    }
    let out = render(&["--all"]).success();
    assert!(!project.path().join("build/staging").exists(), "{}", out.stderr);
    assert!(project.path().join("build/demo/.terraform").is_dir(), "{}", out.stderr);
    assert_eq!(project.read("build/loadtest/old-notes.md"), "older than the tree\n");
    for kept in ["demo", "loadtest"] {
        assert!(
            out.stderr.contains("kept `") && out.stderr.contains(&format!("{kept}`: its account no longer exists")),
            "{kept}: {}",
            out.stderr
        );
    }
    assert!(project.path().join("build/qa").is_dir());
    // Its marker names `production`, not `prod-hotfix`: not a tree of a gone account.
    assert!(project.read("build/prod-hotfix/.stamp-rendered").contains("account: production"));
    assert!(project.path().join("build/prod-hotfix/stamp_backend.tf").is_file());
}

#[test]
#[cfg(target_os = "linux")]
fn an_old_tree_a_killed_render_left_is_judged_before_the_next_render_sweeps_it() {
    let project = Project::example();
    let render = || project.stamp(["render", "--all"]).env("STAMP_VERSION", "1.0.0").run();
    render().success();
    // Killed after it moved qa's old tree out of its place (into its staging folder, named
    // with this machine and the process) and before it removed it: a shell still in that tree
    // wrote there since. The folder is named here, by another build of Stamp (this test's), as
    // an older Stamp would have named it.
    let build = project.path().join("build");
    let staging = stamp::render::tree::staging_dir_in(&build).unwrap().keep();
    fs_err::remove_dir(&staging).unwrap();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let name = staging.file_name().unwrap().to_str().unwrap();
    let left = build.join(name.replace(&format!("-{}-", std::process::id()), &format!("-{pid}-")));
    fs_err::rename(build.join("qa"), &left).unwrap();
    fs_err::write(left.join("notes.md"), "mine\n").unwrap();
    let out = render().success();
    assert!(out.stderr.contains("qa` replaced was kept as `") && out.stderr.contains("`notes.md`"), "{}", out.stderr);
    let kept: Vec<_> = fs_err::read_dir(&build)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("qa.kept-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(fs_err::read_to_string(kept[0].join("notes.md")).unwrap(), "mine\n");
    assert!(!left.exists() && build.join("qa/stamp_backend.tf").is_file());
    // Kept for good: later renders neither take it nor say it again.
    let out = render().success();
    assert!(!out.stderr.contains("notes.md"), "{}", out.stderr);
    assert!(kept[0].join("notes.md").is_file());
}

#[test]
fn render_all_never_removes_what_another_project_rendered_into_the_same_folder() {
    let shared = tempfile::tempdir().unwrap();
    let out = shared.path().to_str().unwrap();
    let (first, second) = (Project::example(), Project::example());
    let render =
        |project: &Project| project.stamp(["render", "--all", "--out", out]).env("STAMP_VERSION", "1.0.0").run();
    render(&first).success();
    // The second project has no `staging`: the first's tree of it is not the second's to remove.
    fs_err::remove_file(second.path().join(ACCOUNTS).join("staging.yaml")).unwrap();
    // A tree an older Stamp wrote, whose marker names its account but no project, is kept and said.
    let older = shared.path().join("retired");
    fs_err::create_dir_all(&older).unwrap();
    fs_err::write(older.join("main.tf"), "").unwrap();
    fs_err::write(older.join(".stamp-rendered"), "rendered by stamp 0.1.0\naccount: retired\nfiles:\n\"main.tf\"\n")
        .unwrap();
    let run = render(&second).success();
    assert!(shared.path().join("staging/stamp_backend.tf").is_file(), "{}", run.stderr);
    assert!(!run.stderr.contains("staging`"), "another project's tree is none of this one's business: {}", run.stderr);
    assert!(older.join("main.tf").is_file(), "{}", run.stderr);
    assert!(run.stderr.contains("retired`: its account no longer exists, but an older Stamp"), "{}", run.stderr);
    // The project that wrote it removes it once its account is gone, however it is reached (here
    // through a link to its folder, from a subfolder).
    fs_err::remove_file(first.path().join(ACCOUNTS).join("staging.yaml")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let link = elsewhere.path().join("link-to-first");
    std::os::unix::fs::symlink(first.path(), &link).unwrap();
    let run = common::Run::new(&link.join(ACCOUNTS))
        .args(["render", "--all", "--out", out])
        .env("STAMP_VERSION", "1.0.0")
        .run()
        .success();
    assert!(!shared.path().join("staging").exists(), "{}", run.stderr);
    // Inside the project, a tree's marker names no project: every checkout renders the same tree.
    first.stamp(["render", "qa"]).env("STAMP_VERSION", "1.0.0").run().success();
    assert!(first.read("build/qa/.stamp-rendered").starts_with("rendered by stamp "));
    assert!(!first.read("build/qa/.stamp-rendered").contains("project:"));
    assert!(fs_err::read_to_string(shared.path().join("qa/.stamp-rendered")).unwrap().contains("\nproject: "));
    // A tree another project rendered into this project's own `build/` names that project: it
    // is not this one's to remove either.
    fs_err::remove_file(first.path().join(ACCOUNTS).join("loadtest.yaml")).unwrap();
    let into_first = first.path().join("build/loadtest");
    second.stamp(["render", "loadtest", "--out"]).args([&into_first]).env("STAMP_VERSION", "1.0.0").run().success();
    let run = first.stamp(["render", "--all"]).env("STAMP_VERSION", "1.0.0").run().success();
    assert!(into_first.join("stamp_backend.tf").is_file(), "{}", run.stderr);
    assert!(!run.stderr.contains("loadtest"), "{}", run.stderr);
}

#[test]
fn a_changed_file_mode_reaches_the_tree_on_disk() {
    let project = Project::example();
    let render = || project.stamp(["render", "--all"]).env("STAMP_VERSION", "1.0.0").run().success();
    render();
    let script = "scripts/data-stats.sh";
    let rendered = project.path().join("build/qa").join(script);
    let executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        fs_err::metadata(path).unwrap().permissions().mode() & 0o111 != 0
    };
    assert!(executable(&rendered));
    let source = project.path().join("blueprints/service-platform").join(script);
    std::process::Command::new("chmod").arg("-x").arg(&source).status().unwrap();
    render();
    assert!(!executable(&rendered), "the blueprint's mode reaches the rendered tree");
    // A mode changed by hand in the tree is undone too.
    std::process::Command::new("chmod").arg("+x").arg(&rendered).status().unwrap();
    render();
    assert!(!executable(&rendered));
}

#[test]
#[cfg(target_os = "linux")]
fn a_huge_file_in_a_tree_is_never_read_into_memory() {
    let project = Project::example();
    let render = || project.stamp(["render", "--all"]).env("STAMP_VERSION", "1.0.0").run().success();
    render();
    // A state file of gigabytes (`terraform apply` run in the tree itself), and one of Stamp's
    // files replaced by a large one: sparse, so they take no disk.
    let qa = project.path().join("build/qa");
    fs_err::File::create(qa.join("terraform.tfstate")).unwrap().set_len(8 << 30).unwrap();
    let backend = qa.join("stamp_backend.tf");
    fs_err::remove_file(&backend).unwrap();
    fs_err::File::create(&backend).unwrap().set_len(384 << 20).unwrap();
    let out = project.stamp(["render", "--all"]).env("STAMP_VERSION", "1.0.0").run();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("did not write") && out.stderr.contains("`terraform.tfstate`"), "{}", out.stderr);
    fs_err::remove_file(qa.join("terraform.tfstate")).unwrap();
    render();
    assert!(project.read("build/qa/stamp_backend.tf").contains("backend"));
    // The largest process this test binary has waited for (every Stamp it ran).
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let peak_mib = usage.max_rss() / 1024;
    assert!(peak_mib < 256, "a Stamp run took {peak_mib} MiB");
}

/// `affected --since HEAD` after a commit, as JSON.
fn affected(project: &Project) -> serde_json::Value {
    let out = project.stamp(["affected", "--since", "HEAD", "--format", "json"]).run().success();
    serde_json::from_str(&out.stdout).unwrap()
}

fn affected_names(project: &Project) -> Vec<String> {
    affected(project)["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn affected_sees_a_file_git_is_told_not_to_look_at() {
    let project = Project::example();
    project.commit_all("base");
    for flag in ["--assume-unchanged", "--skip-worktree"] {
        let file = format!("{ACCOUNTS}/qa.yaml");
        project.git(&["update-index", flag, &file]);
        let text = project.read(&file);
        project.write(&file, &text.replace("desired_size: 2", "desired_size: 5"));
        assert_eq!(affected_names(&project), ["qa"], "with {flag}");
        for cache in ["--no-cache", "--quiet"] {
            let out = project.stamp([cache, "diff", "qa@HEAD", "qa"]).run();
            assert_eq!(out.code, 1, "{flag} {cache}: {}{}", out.stdout, out.stderr);
        }
        project.write(&file, &text);
        project.git(&["update-index", &flag.replace("--", "--no-"), &file]);
    }
}

#[test]
fn affected_reads_revisions_whose_files_a_checkout_converts_or_that_reach_outside_the_project() {
    // Line endings converted on checkout: nothing changed.
    let project = Project::example();
    project.write(".gitattributes", "*.j2 text eol=crlf\n");
    project.commit_all("base");
    project.git(&["rm", "-q", "--cached", "-r", "."]);
    project.git(&["reset", "-q", "--hard"]);
    assert_eq!(affected_names(&project), Vec::<String>::new());
    // The accounts in a folder beside the project's.
    let repo = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        assert!(std::process::Command::new("cp").arg("-r").arg(from).arg(to).status().unwrap().success());
    };
    let root = repo.path().join("platform");
    fs_err::create_dir_all(&root).unwrap();
    for entry in ["stamp.yaml", "archetypes", "blueprints"] {
        copy(&common::repo().join(entry), &root.join(entry));
    }
    copy(&common::repo().join(ACCOUNTS), &repo.path().join("accounts"));
    let settings = fs_err::read_to_string(root.join("stamp.yaml")).unwrap();
    fs_err::write(root.join("stamp.yaml"), settings.replace("accounts: fixtures/accounts", "accounts: ../accounts"))
        .unwrap();
    let outside = Project { dir: repo };
    outside.commit_all("base");
    let run = |args: &[&str]| common::Run::new(&root).args(args).run();
    let out = run(&["affected", "--since", "HEAD"]).success();
    assert_eq!(out.stdout, "", "{}", out.stderr);
    let qa = outside.path().join("accounts/qa.yaml");
    fs_err::write(&qa, fs_err::read_to_string(&qa).unwrap().replace("desired_size: 2", "desired_size: 5")).unwrap();
    assert_eq!(run(&["affected", "--since", "HEAD"]).success().stdout, "qa\n");
}

/// `render --all` stages every tree, makes them durable at once, then moves each into place: a
/// run killed at any moment leaves each account's tree whole, the old one or the new one (never
/// half of each, never missing), and the next run finishes the work.
#[test]
fn a_killed_render_leaves_every_tree_old_or_new() {
    let project = Project::example();
    for i in 0..24_u8 {
        project.add_local_copy(&format!("copy-{i:02}"), 100 + i, "qa");
    }
    let render = |version: &str, out: &str| {
        project.stamp(["render", "--all", "--out", out]).env("STAMP_VERSION", version).run().success();
    };
    let trees = |out: &str| -> std::collections::BTreeMap<String, String> {
        fs_err::read_dir(project.path().join(out))
            .unwrap()
            .map(Result::unwrap)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| (e.file_name().into_string().unwrap(), tree_text(&e.path())))
            .collect()
    };
    // What each tree holds before and after: the version stamped in differs.
    render("1.0.0", "old");
    render("2.0.0", "new");
    let (old, new) = (trees("old"), trees("new"));
    assert_eq!(old.len(), 34);
    // `u64::MAX`: when the first tree is moved in.
    for delay_ms in [0_u64, 50, 100, 200, 300, u64::MAX, u64::MAX, u64::MAX] {
        render("1.0.0", "out");
        assert_eq!(trees("out"), old);
        let mut child = project.stamp(["render", "--all", "--out", "out"]).env("STAMP_VERSION", "2.0.0").spawn();
        if delay_ms == u64::MAX {
            // Killed as soon as the first tree is moved in: in the middle of the moves.
            let inodes = || -> Vec<u64> {
                use std::os::unix::fs::MetadataExt;
                old.keys()
                    .map(|a| fs_err::metadata(project.path().join("out").join(a)).map_or(0, |m| m.ino()))
                    .collect()
            };
            let before = inodes();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while inodes() == before && child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {}
        } else {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        }
        let _ = child.kill();
        let _ = child.wait();
        let found = trees("out");
        assert_eq!(found.keys().collect::<Vec<_>>(), old.keys().collect::<Vec<_>>(), "after {delay_ms} ms");
        for (account, tree) in &found {
            assert!(
                *tree == old[account] || *tree == new[account],
                "`{account}` is neither its old nor its new tree after a kill at {delay_ms} ms"
            );
        }
        // The next run finishes the work, and removes what the killed one left.
        render("2.0.0", "out");
        assert_eq!(trees("out"), new, "after a kill at {delay_ms} ms and a new run");
        let left: Vec<String> = fs_err::read_dir(project.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(left.is_empty(), "staging folders left after a kill at {delay_ms} ms: {left:?}");
    }
}

/// `check` asks git for the commit (which stamps every tree) only when a template reads the
/// version: otherwise the version cannot change what it finds, so a new commit leaves its cache
/// warm. A template that reads it is checked with the real version. The `git` on PATH is a
/// wrapper (named as such) that logs each call before running the real one.
#[test]
fn check_asks_git_only_when_a_template_reads_the_version() {
    let project = Project::example();
    project.commit_all("first");
    let git = common::GitLog::new(&project);
    let (path, calls) = (&git.path, || git.calls());
    let check = |version: &str| project.stamp(["check"]).env("PATH", path).env("STAMP_VERSION", version);

    // Files changed within a second of a run are read again by the next: these are older.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    check("1.0.0").run().success();
    assert_eq!(calls(), "", "no template reads the version");
    // A new commit changes no check result: the index is left as it is.
    let before = index(&project);
    project.write("NOTES.md", "a new commit\n");
    project.commit_all("second");
    check("1.0.0").run().success();
    assert!(index(&project) == before, "the cache stayed warm across a commit");
    let _ = calls();
    project.stamp(["render", "--all"]).env("PATH", path).run().success();
    assert!(calls().contains("status"), "render stamps the commit in (and the wrapper logs)");

    // A template that reads the version, and breaks the HCL for one of them.
    let template = "blueprints/service-platform/cluster.tf.j2";
    let text = project.read(template);
    project.write(template, &format!("{text}{{% if stamp.version == \"6.6.6\" %}}}}{{% endif %}}\n"));
    check("1.0.0").run().success();
    assert!(calls().contains("status"), "the version is read: git is asked");
    let broken = check("6.6.6").run().failure(1);
    assert!(broken.stderr.contains("rendered file is not valid HCL"), "{}", broken.stderr);
    let uncached = project.stamp(["--no-cache", "check"]).env("PATH", path).env("STAMP_VERSION", "6.6.6").run();
    assert_eq!(broken.snapshot(), uncached.snapshot());
}

/// Rendered files are `0644` (`0755` when executable) whatever the umask: a file the umask would
/// take bits of gets its mode set again.
#[test]
fn rendered_files_have_their_modes_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::example();
    for (umask, out) in [("077", "strict"), ("022", "usual"), ("000", "open")] {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" render --all --out {out}"))
            .arg(env!("CARGO_BIN_EXE_stamp"))
            .current_dir(project.path())
            .env("STAMP_VERSION", "1.0.0")
            .status()
            .unwrap();
        assert!(status.success(), "umask {umask}");
        let mode =
            |path: &str| fs_err::metadata(project.path().join(out).join(path)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("qa/scripts/data-stats.sh"), 0o755, "umask {umask}");
        assert_eq!(mode("qa/cluster.tf"), 0o644, "umask {umask}");
        assert_eq!(mode("qa/.stamp-rendered"), 0o644, "umask {umask}");
    }
}

/// Account files in many folders are listed with a few files open at once: a folder is closed
/// before the next is read, so a low open-file limit is no limit on the number of folders.
#[test]
fn accounts_in_many_folders_need_few_open_files() {
    let project = Project::example();
    let staging = project.read(&format!("{ACCOUNTS}/local-staging.yaml"));
    for n in 0..150 {
        let text = staging
            .replace("10.41.0.0/16", &format!("10.{}.{}.0/24", 100 + n / 200, n % 200))
            .replace("staging.local.acme.internal", &format!("t{n}.local.acme.internal"));
        project.write(&format!("{ACCOUNTS}/team-{n:03}/acct-{n:03}.yaml"), &text);
    }
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 48 && exec \"$0\" list --format json")
        .arg(env!("CARGO_BIN_EXE_stamp"))
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names = listed.to_string();
    assert!(names.contains("acct-000") && names.contains("acct-149"), "{names}");
}

/// A ledger line of `account`: an apply, or a switch to `slot`.
fn ledger_line(account: &str, operation: &str, slot: &str) -> String {
    let record = serde_json::json!({
        "time": "2026-12-01T00:00:00Z", "account": account, "environment": "qa", "operation": operation,
        "outcome": "succeeded", "version": "1.0.0", "environment_version": "1.0.0+none", "commit": "none",
        "digest": "", "who": "ci", "slot": slot
    });
    format!("{record}\n")
}

/// A check of every account renders each account the cache does not know while loading reads
/// it, in the slot the ledger says is live: the check itself renders none of them again (only
/// the ephemeral one, whose tags follow the clock), and finds what a check without the cache
/// finds, for an account the ledger moved to its green slot and one it gives a creation time.
#[test]
fn a_cold_check_of_every_account_renders_each_once_in_its_live_slot() {
    use stamp::config::project::{LoadOptions, Scope};
    let project = Project::example();
    project.write(&format!("{ACCOUNTS}/ana-play.yaml"), EPHEMERAL);
    project
        .write(".stamp/ledger/qa.jsonl", &(ledger_line("qa", "apply", "blue") + &ledger_line("qa", "switch", "green")));
    project.write(".stamp/ledger/production.jsonl", &ledger_line("production", "apply", "blue"));
    // A second file of the account `qa` (a conflict the check reports): both take its history.
    project.write(&format!("{ACCOUNTS}/qa-again.yaml"), &project.read(&format!("{ACCOUNTS}/qa.yaml")));
    let check = |cache: bool| {
        let memo =
            std::sync::Arc::new(stamp::config::catalog::Memo::new(stamp::cache::Cache::open(project.path(), cache)));
        let prerender = stamp::ops::check::Prerender { version: Some("1.0.0") };
        let options = LoadOptions { scope: Scope::Only(&[]), memo, files: None, prepare: Some(&prerender) };
        let workspace = stamp::ops::Workspace::load_with(project.path(), options).unwrap();
        let qa: Vec<_> = workspace.project.catalog.iter().filter(|e| e.name() == "qa").map(|e| e.slot).collect();
        assert_eq!(qa, [stamp::config::Slot::Green; 2]);
        // Creation times: the config's own, else the first apply the ledger holds, else none.
        let created = |name: &str| {
            let entry = workspace.project.catalog.iter().find(|e| e.name() == name).unwrap();
            (entry.created_at.clone(), workspace.project.load_entry(entry).unwrap().created_at)
        };
        let own = Some("2026-11-30T08:00:00Z".to_string());
        assert_eq!(created("ana-play"), (own.clone(), own), "no history: the config's own");
        let applied = Some("2026-12-01T00:00:00Z".to_string());
        assert_eq!(created("production"), (applied.clone(), applied), "the ledger's first apply");
        assert_eq!(created("staging"), (None, None), "neither");
        let options = stamp::ops::check::CheckOptions { version: Some("1.0.0".into()), ..Default::default() };
        let report = stamp::ops::check::check(&workspace, &options);
        let found: Vec<String> = report.diagnostics.iter().map(|d| format!("{d:?}")).collect();
        (report.accounts_checked, report.accounts_rendered, found)
    };
    let (checked, rendered, found) = check(true);
    let (plain_checked, plain_rendered, plain_found) = check(false);
    assert_eq!((checked, &found), (plain_checked, &plain_found), "the same check with and without the cache");
    assert_eq!(plain_rendered, plain_checked, "without the cache, every account is rendered by the check");
    assert_eq!(rendered, 1, "with it, only the ephemeral account is rendered again");
}

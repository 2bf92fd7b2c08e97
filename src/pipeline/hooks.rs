//! Hooks and smoke tests, declared in the archetype and overridable per account. Commands get
//! the account's facts as environment variables, never by interpolation into a command line,
//! so config values cannot inject commands.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use std::os::fd::BorrowedFd;

pub use crate::config::hooks::{Hook, Hooks, Run, SmokeTest};
use crate::terraform::process::{Finished, HOOK_GRACE, Invocation, Log, interrupted};

/// Which list a hook comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HookKind {
    #[serde(rename = "pre-deploy hook")]
    PreDeploy,
    #[serde(rename = "post-deploy hook")]
    PostDeploy,
    #[serde(rename = "smoke test")]
    SmokeTest,
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PreDeploy => "pre-deploy hook",
            Self::PostDeploy => "post-deploy hook",
            Self::SmokeTest => "smoke test",
        })
    }
}

/// What a hook or smoke test did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookResult {
    pub kind: HookKind,
    pub name: String,
    pub passed: bool,
    pub attempts: u32,
    /// Last lines of output when it failed.
    pub output: String,
}

/// Facts given to hooks as environment variables.
pub struct HookEnv {
    pub vars: Vec<(String, String)>,
}

impl HookEnv {
    /// `STAMP_ACCOUNT`, `STAMP_ENVIRONMENT`, `STAMP_VERSION`, `STAMP_ARCHETYPE`,
    /// `STAMP_ROOT` and every Terraform output as `STAMP_OUTPUT_<NAME>`.
    pub fn new(facts: &[(&str, &str)], outputs: &BTreeMap<String, serde_json::Value>) -> Self {
        let mut vars: Vec<(String, String)> = facts.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        for (name, value) in outputs {
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_string);
            vars.push((format!("STAMP_OUTPUT_{}", name.to_uppercase().replace(['-', '.'], "_")), text));
        }
        Self { vars }
    }
}

/// Where hooks run: their folder, the log, and the account's lock they inherit.
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub cwd: &'a Path,
    pub log: &'a Log,
    pub hold: Option<BorrowedFd<'a>>,
}

pub(crate) fn invocation<'a>(run: &'a Run, place: Place<'a>, env: &HookEnv, timeout: Duration) -> Invocation<'a> {
    let sh = Path::new("/bin/sh");
    let (program, args): (&Path, Vec<String>) = match run {
        Run::Argv(argv) => {
            (Path::new(argv.first().map_or("true", String::as_str)), argv.iter().skip(1).cloned().collect())
        }
        Run::Shell(line) => (sh, vec!["-c".to_string(), line.clone()]),
    };
    Invocation {
        program,
        args,
        cwd: place.cwd,
        env: env.vars.clone(),
        timeout: Some(timeout),
        grace: HOOK_GRACE,
        log_stdout: true,
        log_stderr: true,
        max_output: crate::terraform::process::MAX_OUTPUT,
        hold: place.hold,
    }
}

/// Runs hooks in order; stops at the first failure.
pub fn run_hooks(kind: HookKind, hooks: &[Hook], place: Place<'_>, env: &HookEnv) -> Vec<HookResult> {
    let mut results = Vec::new();
    for hook in hooks {
        place.log.line(&format!("# {kind} `{}`", hook.name));
        let timeout = hook.timeout.unwrap_or(Duration::from_secs(300));
        let finished = invocation(&hook.run, place, env, timeout).run(place.log);
        let (passed, output) = outcome(finished);
        results.push(HookResult { kind, name: hook.name.clone(), passed, attempts: 1, output });
        if !passed || interrupted() {
            break;
        }
    }
    results
}

/// Runs smoke tests, each retried every `interval` until it passes or `deadline` passes.
pub fn run_smoke_tests(tests: &[SmokeTest], place: Place<'_>, env: &HookEnv) -> Vec<HookResult> {
    let mut results = Vec::new();
    for test in tests {
        let deadline = test.deadline.unwrap_or(Duration::from_secs(120));
        let interval = test.interval.unwrap_or(Duration::from_secs(5));
        let start = Instant::now();
        let mut attempts = 0;
        let (passed, output) = loop {
            attempts += 1;
            place.log.line(&format!("# smoke test `{}`, attempt {attempts}", test.name));
            let run = invocation(&test.run, place, env, test.timeout.unwrap_or(Duration::from_secs(30)));
            let (passed, output) = outcome(run.run(place.log));
            if passed || interrupted() || start.elapsed().saturating_add(interval) > deadline {
                break (passed, output);
            }
            std::thread::sleep(interval);
        };
        results.push(HookResult { kind: HookKind::SmokeTest, name: test.name.clone(), passed, attempts, output });
        if !passed {
            break;
        }
    }
    results
}

pub(crate) fn outcome(finished: std::io::Result<Finished>) -> (bool, String) {
    match finished {
        Ok(f) if f.success() => (true, String::new()),
        Ok(f) if f.timed_out => (false, format!("timed out\n{}", f.tail(10))),
        Ok(f) => (false, format!("exit code {}\n{}", f.code.map_or("signal".into(), |c| c.to_string()), f.tail(10))),
        Err(e) => (false, e.to_string()),
    }
}

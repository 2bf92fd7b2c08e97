//! Running Terraform and hook commands as subprocesses: output streamed to the account's log
//! file (never interleaved on the terminal), a timeout, and Ctrl-C forwarded to the child so it
//! can stop cleanly and never leaves state half-written.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a child may take to stop after an interrupt before it is killed.
const GRACE: Duration = Duration::from_secs(60);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// Whether the user asked Stamp to stop (Ctrl-C or SIGTERM).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Catches SIGINT and SIGTERM: Stamp stops starting new work and forwards one SIGINT to each
/// running child (which runs in its own process group, so the terminal's Ctrl-C reaches it
/// only through Stamp, exactly once per press).
pub fn install_interrupt_handler() {
    HANDLER.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([libc_sigint(), libc_sigterm()]) else { return };
        std::thread::spawn(move || {
            for _ in signals.forever() {
                INTERRUPTED.store(true, Ordering::SeqCst);
                for &pid in CHILDREN.lock().expect("children lock").iter() {
                    let _ = kill(Pid::from_raw(i32::try_from(pid).unwrap_or(0)), Signal::SIGINT);
                }
            }
        });
    });
}

fn libc_sigint() -> i32 {
    Signal::SIGINT as i32
}

fn libc_sigterm() -> i32 {
    Signal::SIGTERM as i32
}

/// An append-only log file for one account's runs.
#[derive(Debug)]
pub struct Log {
    pub path: PathBuf,
    file: Mutex<fs_err::File>,
}

impl Log {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let file = fs_err::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { path: path.to_path_buf(), file: Mutex::new(file) })
    }

    pub fn line(&self, text: &str) {
        let mut file = self.file.lock().expect("log lock");
        let _ = writeln!(file, "{text}");
    }
}

/// One command to run.
pub struct Invocation<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    pub cwd: &'a Path,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    /// Copy stdout into the log. Off for commands whose output holds secrets in clear
    /// (`output -json`, `state pull`, `show -json`).
    pub log_stdout: bool,
}

/// How a command ended.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// `None` when it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    /// The last lines of stderr.
    pub stderr: String,
    pub timed_out: bool,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last `lines` lines of stderr (or stdout when stderr is empty), for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = if self.stderr.trim().is_empty() { &self.stdout } else { &self.stderr };
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Invocation<'_> {
    /// The command line, for logs and error messages.
    pub fn display(&self) -> String {
        let mut out = self.program.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        for arg in &self.args {
            out.push(' ');
            out.push_str(arg);
        }
        out
    }

    /// Runs the command to completion, streaming both outputs into `log`.
    pub fn run(&self, log: &Log) -> std::io::Result<Finished> {
        use std::os::unix::process::CommandExt;
        install_interrupt_handler();
        if interrupted() {
            // Never start something new after Ctrl-C: it would not get the interrupt.
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                format!("interrupted: `{}` was not started", self.display()),
            ));
        }
        log.line(&format!("$ {}  (in {})", self.display(), self.cwd.display()));
        let start = Instant::now();
        let mut child = Command::new(self.program)
            .args(&self.args)
            .current_dir(self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run `{}`: {e}", self.program.display())))?;
        let pid = child.id();
        CHILDREN.lock().expect("children lock").push(pid);
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let result = std::thread::scope(|scope| {
            let out = scope.spawn(|| pump(stdout, self.log_stdout.then_some(log), ""));
            let err = scope.spawn(|| pump(stderr, Some(log), "stderr: "));
            let code;
            let mut timed_out = false;
            let mut interrupt_sent: Option<Instant> = None;
            loop {
                if let Some(status) = child.try_wait()? {
                    code = status.code();
                    break;
                }
                if self.timeout.is_some_and(|t| start.elapsed() > t) && interrupt_sent.is_none() {
                    timed_out = true;
                    let _ = kill(Pid::from_raw(i32::try_from(pid).unwrap_or(0)), Signal::SIGINT);
                    interrupt_sent = Some(Instant::now());
                }
                if interrupted() && interrupt_sent.is_none() {
                    // The handler has already forwarded the interrupt.
                    interrupt_sent = Some(Instant::now());
                }
                if interrupt_sent.is_some_and(|at| at.elapsed() > GRACE) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let stdout = out.join().expect("stdout reader");
            let stderr = tail_lines(&err.join().expect("stderr reader"), 40);
            Ok::<_, std::io::Error>(Finished {
                code,
                stdout,
                stderr,
                timed_out,
                interrupted: interrupted(),
                elapsed: start.elapsed(),
            })
        });
        CHILDREN.lock().expect("children lock").retain(|&p| p != pid);
        let finished = result?;
        log.line(&format!(
            "# exit {} after {:.1}s{}{}",
            finished.code.map_or_else(|| "signal".to_string(), |c| c.to_string()),
            finished.elapsed.as_secs_f64(),
            if finished.timed_out { " (timed out)" } else { "" },
            if finished.interrupted { " (interrupted)" } else { "" },
        ));
        Ok(finished)
    }
}

/// Copies a child's output into the log (if any) line by line and returns it.
fn pump(stream: impl Read, log: Option<&Log>, prefix: &str) -> String {
    let mut all = String::new();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if let Some(log) = log {
            log.line(&format!("{prefix}{line}"));
        }
        all.push_str(&line);
        all.push('\n');
    }
    all
}

fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

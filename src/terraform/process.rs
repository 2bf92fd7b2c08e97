//! Running Terraform and hook commands as subprocesses: output streamed to the account's log
//! file (never interleaved on the terminal), a timeout, and Ctrl-C forwarded so the command can
//! stop cleanly and never leaves state half-written.
//!
//! Each command runs in its own process group, and what Stamp does to it (interrupt on Ctrl-C,
//! terminate on timeout, kill after a grace period, and kill whatever is left once it exits)
//! reaches the whole group: a shell hook's `sleep` or background job ends with it. Each command
//! also inherits the account's lock, so the lock is held until the last of its processes exits,
//! even when Stamp itself is killed.

use std::io::{Read, Write};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// How long Terraform may take to stop after an interrupt before it is killed.
pub const TERRAFORM_GRACE: Duration = Duration::from_secs(60);

/// How long a hook may take to stop after it is told to before it is killed.
pub const HOOK_GRACE: Duration = Duration::from_secs(5);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// Whether the user asked Stamp to stop (Ctrl-C or SIGTERM).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Catches SIGINT, SIGTERM, SIGHUP and SIGQUIT: Stamp stops starting new work and forwards one SIGINT to each
/// running command's process group (its own, so the terminal's Ctrl-C reaches it only through
/// Stamp, exactly once per press).
pub fn install_interrupt_handler() {
    HANDLER.call_once(|| {
        // A closed terminal (SIGHUP) or SIGQUIT stops a run as cleanly as Ctrl-C does.
        let stops = [libc_sigint(), libc_sigterm(), Signal::SIGHUP as i32, Signal::SIGQUIT as i32];
        let Ok(mut signals) = signal_hook::iterator::Signals::new(stops) else { return };
        std::thread::spawn(move || {
            for _ in signals.forever() {
                INTERRUPTED.store(true, Ordering::SeqCst);
                for &pid in CHILDREN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
                    signal_group(pid, Signal::SIGINT);
                }
            }
        });
    });
}

/// Sends `signal` to the process group led by `pid`.
fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(pid), signal);
    }
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
        let file = crate::fsio::open_plain_with(fs_err::OpenOptions::new().create(true).append(true), path)?;
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
    /// After an interrupt or a timeout, how long the command may take to stop before it is
    /// killed.
    pub grace: Duration,
    /// Copy stdout into the log. Off for commands whose output holds secrets in clear
    /// (`output -json`, `state pull`, `show -json`).
    pub log_stdout: bool,
    /// Copy stderr into the log. Off for commands whose every output may hold secrets (a plan
    /// policy reading the plan as JSON).
    pub log_stderr: bool,
    /// The most of stdout kept (see [`Finished::truncated`]).
    pub max_output: usize,
    /// A file descriptor every process of the command inherits, under the same number: the
    /// account's lock, held until the last of them exits.
    pub hold: Option<BorrowedFd<'a>>,
}

/// Bytes a command reads as a file that nothing can change while it runs: on Linux an
/// in-memory file (`memfd`) sealed against writes and resizing, which the command opens by
/// this process's `/proc/PID/fd/N` (it need not inherit anything: a wrapper that closes what
/// it was given, or starts the command anew, passes the path on as it is).
#[derive(Debug)]
pub struct SealedFile {
    fd: std::os::fd::OwnedFd,
}

impl SealedFile {
    /// The bytes sealed; `None` where the system has no such files (then the caller gives the
    /// command the file on disk).
    #[cfg(target_os = "linux")]
    pub fn new(name: &str, bytes: &[u8]) -> std::io::Result<Option<Self>> {
        use nix::fcntl::{FcntlArg, SealFlag, fcntl};
        use nix::sys::memfd::{MFdFlags, memfd_create};
        use std::io::Write as _;
        let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
        let mut file = std::fs::File::from(fd);
        file.write_all(bytes)?;
        let fd = std::os::fd::OwnedFd::from(file);
        let seals = SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(seals))?;
        let sealed = Self { fd };
        // Without `/proc` (a container may have none), or with one of another process id
        // namespace, the path would lead nowhere, or elsewhere: it must be this very file.
        let opened = nix::sys::stat::fstat(&sealed.fd)?;
        let named = fs_err::metadata(sealed.path()).ok();
        let same = named.is_some_and(|m| {
            use std::os::unix::fs::MetadataExt as _;
            m.dev() == opened.st_dev as u64 && m.ino() == opened.st_ino as u64
        });
        Ok(same.then_some(sealed))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new(_: &str, _: &[u8]) -> std::io::Result<Option<Self>> {
        Ok(None)
    }

    /// The path any process of this user reads it by, while this value lives.
    pub fn path(&self) -> String {
        use std::os::fd::AsRawFd as _;
        format!("/proc/{}/fd/{}", std::process::id(), self.fd.as_raw_fd())
    }
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
    /// Stdout was longer than the invocation's `max_output`: the rest was read and dropped.
    pub truncated: bool,
    /// Its output was still open [`OUTPUT_GRACE`] after it exited (a process it left behind
    /// outside its group holds it): what was read by then is all there is.
    pub output_open: bool,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last `lines` lines of stderr (or stdout when stderr is empty), for error messages.
    pub fn tail(&self, lines: usize) -> String {
        let text = if self.stderr.trim().is_empty() { &self.stdout } else { &self.stderr };
        last_lines(text, lines)
    }

    /// The last `lines` lines of stderr alone: for a command whose stdout holds values in
    /// clear (`output -json`, `state pull`), which no message may quote.
    pub fn stderr_tail(&self, lines: usize) -> String {
        last_lines(&self.stderr, lines)
    }
}

/// The last `lines` lines of `text` that are not blank.
fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
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
        let mut command = Command::new(self.program);
        command
            .args(&self.args)
            .current_dir(self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(fd) = self.hold {
            command_fds::CommandFdExt::preserved_fds(&mut command, vec![fd.try_clone_to_owned()?]);
        }
        let mut child = command
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run `{}`: {e}", self.program.display())))?;
        drop(command);
        let pid = child.id();
        CHILDREN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(pid);
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(std::io::Error::other("the command's output is not piped"));
        };
        // Readers of their own (not scoped): a process the command left behind outside its
        // group may hold the pipes open long after it exited, and is not waited for.
        let (sender, pieces) = std::sync::mpsc::sync_channel(PIECES_WAITING);
        let out_sender = sender.clone();
        // A line of stdout may be as long as all of the stdout kept (plus one byte: a cut shows).
        let stdout_line = self.max_output.saturating_add(1);
        std::thread::spawn(move || pump(stdout, Stream::Out, stdout_line, &out_sender));
        std::thread::spawn(move || pump(stderr, Stream::Err, MAX_LINE, &sender));
        let mut output = Output::default();
        let mut timed_out = false;
        let mut stop_sent: Option<Instant> = None;
        let mut exited_at: Option<Instant> = None;
        loop {
            match pieces.recv_timeout(Duration::from_millis(20)) {
                Ok(piece) => {
                    output.take(piece, self, log);
                    // Read what is already there before looking at the command again (at most
                    // what can wait: a command that never stops printing is still watched).
                    for _ in 0..PIECES_WAITING {
                        let Ok(piece) = pieces.try_recv() else { break };
                        output.take(piece, self, log);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => output.open = 0,
            }
            if let Some(at) = exited_at {
                if output.open == 0 || at.elapsed() > OUTPUT_GRACE {
                    break;
                }
                continue;
            }
            if exited(pid) {
                // The command is done: whatever it left running in its group goes too (and
                // lets go of its output). Its leader, not yet reaped, keeps the group's number
                // from being reused until then.
                signal_group(pid, Signal::SIGKILL);
                exited_at = Some(Instant::now());
                continue;
            }
            if self.timeout.is_some_and(|t| start.elapsed() > t) && stop_sent.is_none() {
                timed_out = true;
                // SIGTERM: a shell's background jobs ignore SIGINT.
                signal_group(pid, Signal::SIGTERM);
                stop_sent = Some(Instant::now());
            }
            if interrupted() && stop_sent.is_none() {
                // The handler has already forwarded the interrupt.
                stop_sent = Some(Instant::now());
            }
            if stop_sent.is_some_and(|at| at.elapsed() > self.grace) {
                signal_group(pid, Signal::SIGKILL);
            }
        }
        let result = child.wait().map(|status| Finished {
            code: status.code(),
            stdout: output.stdout,
            stderr: output.stderr.into_iter().collect::<Vec<_>>().join("\n"),
            timed_out,
            interrupted: interrupted(),
            elapsed: start.elapsed(),
            truncated: output.truncated,
            output_open: output.open > 0,
        });
        CHILDREN.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|&p| p != pid);
        let finished = result?;
        log.line(&format!(
            "# exit {} after {:.1}s{}{}{}{}",
            finished.code.map_or_else(|| "signal".to_string(), |c| c.to_string()),
            finished.elapsed.as_secs_f64(),
            if finished.timed_out { " (timed out)" } else { "" },
            if finished.interrupted { " (interrupted)" } else { "" },
            if finished.truncated { " (output cut)" } else { "" },
            if finished.output_open { " (output still open: a process left behind holds it)" } else { "" },
        ));
        Ok(finished)
    }
}

/// Whether the process `pid` has exited, without reaping it (so its process group stays its
/// own until Stamp reaps it).
fn exited(pid: u32) -> bool {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let Ok(pid) = i32::try_from(pid) else { return true };
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(_) => true,
        Err(nix::errno::Errno::EINTR) => false,
        Err(_) => true,
    }
}

/// The most of a command's stdout Stamp keeps by default (`terraform show -json`); the rest is
/// read and dropped, so the command is never stuck writing.
pub const MAX_OUTPUT: usize = 256 << 20;

/// The longest line of stderr kept, and of any line written to the log: the rest of a longer
/// line is dropped. (A line of stdout is kept whole up to the invocation's `max_output`:
/// `terraform show -json` prints the whole plan as one line.)
const MAX_LINE: usize = 64 << 10;

/// The most one command writes to the log (beyond it, one line says the rest was left out), so
/// a command that never stops printing cannot fill the disk.
const MAX_LOGGED: usize = 64 << 20;

/// How many pieces of output may wait to be taken: a command writing faster than Stamp takes
/// them waits, instead of filling memory.
const PIECES_WAITING: usize = 1024;

/// How long Stamp reads a command's output after it exited.
pub const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// The lines of stderr kept for error messages.
const STDERR_LINES: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// What a reader sends: a line (without its newline), or the end of its stream.
enum Piece {
    Line(Stream, String),
    End,
}

/// A command's output as it arrives.
struct Output {
    stdout: String,
    stderr: std::collections::VecDeque<String>,
    truncated: bool,
    /// Bytes written to the log so far.
    logged: usize,
    /// Streams not yet at their end.
    open: u8,
}

impl Default for Output {
    fn default() -> Self {
        Self { stdout: String::new(), stderr: std::collections::VecDeque::new(), truncated: false, logged: 0, open: 2 }
    }
}

impl Output {
    fn take(&mut self, piece: Piece, invocation: &Invocation<'_>, log: &Log) {
        match piece {
            Piece::End => self.open = self.open.saturating_sub(1),
            Piece::Line(Stream::Out, text) => {
                if invocation.log_stdout && !self.truncated {
                    self.log(log, "", &text);
                }
                // Once cut, nothing more is kept: the output is whole up to the cut.
                if !self.truncated && self.stdout.len() + text.len() < invocation.max_output {
                    self.stdout.push_str(&text);
                    self.stdout.push('\n');
                } else if !self.truncated {
                    self.truncated = true;
                    log.line(&format!("# output cut: over {} MiB", invocation.max_output >> 20));
                }
            }
            Piece::Line(Stream::Err, text) => {
                if invocation.log_stderr {
                    self.log(log, "stderr: ", &text);
                }
                if self.stderr.len() == STDERR_LINES {
                    self.stderr.pop_front();
                }
                self.stderr.push_back(text);
            }
        }
    }
}

impl Output {
    /// Writes a line to the log: cut at [`MAX_LINE`], and nothing past [`MAX_LOGGED`] in all.
    fn log(&mut self, log: &Log, prefix: &str, text: &str) {
        if self.logged > MAX_LOGGED {
            return;
        }
        let mut end = text.len().min(MAX_LINE);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.logged += prefix.len() + end;
        if self.logged > MAX_LOGGED {
            log.line(&format!("# log cut: the command wrote over {} MiB", MAX_LOGGED >> 20));
        } else if end < text.len() {
            log.line(&format!("{prefix}{} [line cut]", &text[..end]));
        } else {
            log.line(&format!("{prefix}{text}"));
        }
    }
}

/// Reads a child's output line by line and sends each line (cut at `max_line` bytes) to `to`.
/// Output is read as bytes: text that is not UTF-8 is shown with replacement characters, and
/// the reader never stops early (which would leave the command writing into a closed pipe).
fn pump(mut stream: impl Read, which: Stream, max_line: usize, to: &std::sync::mpsc::SyncSender<Piece>) {
    let mut buffer = vec![0u8; 64 << 10];
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    let send = |line: &[u8], cut: bool| {
        let mut text = String::from_utf8_lossy(line).into_owned();
        if cut {
            text.push_str(" [line cut]");
        }
        // The receiver gone (the command was given up on): keep reading, send nothing.
        let _ = to.send(Piece::Line(which, text));
    };
    loop {
        let read = match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for chunk in buffer[..read].split_inclusive(|b| *b == b'\n') {
            let (body, ends) = match chunk.split_last() {
                Some((b'\n', body)) => (body, true),
                _ => (chunk, false),
            };
            let room = max_line.saturating_sub(line.len());
            line.extend_from_slice(&body[..body.len().min(room)]);
            cut |= body.len() > room;
            if ends {
                send(&line, cut);
                line.clear();
                cut = false;
            }
        }
    }
    if !line.is_empty() {
        send(&line, cut);
    }
    let _ = to.send(Piece::End);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, dir: &Path) -> Invocation<'static> {
        Invocation {
            program: Path::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            cwd: Box::leak(dir.to_path_buf().into_boxed_path()),
            env: Vec::new(),
            timeout: Some(Duration::from_secs(60)),
            grace: Duration::from_secs(1),
            log_stdout: true,
            log_stderr: true,
            max_output: MAX_OUTPUT,
            hold: None,
        }
    }

    #[test]
    fn a_long_line_of_stdout_comes_back_whole() {
        // `terraform show -json` prints the whole plan as one line.
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(&dir.path().join("log")).unwrap();
        let finished = sh("head -c 300000 /dev/zero | tr '\\0' x; echo; echo after", dir.path()).run(&log).unwrap();
        assert!(!finished.truncated);
        assert_eq!(finished.stdout, format!("{}\nafter\n", "x".repeat(300_000)));
        // The log holds the line cut, not whole.
        let logged = fs_err::read_to_string(dir.path().join("log")).unwrap();
        assert!(logged.contains("[line cut]") && logged.len() < 100_000, "{} bytes logged", logged.len());
    }

    #[test]
    fn stdout_past_the_cap_is_cut_at_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(&dir.path().join("log")).unwrap();
        let mut invocation =
            sh("for i in 1 2 3; do head -c 900 /dev/zero | tr '\\0' a; echo; done; echo b", dir.path());
        invocation.max_output = 2000;
        let finished = invocation.run(&log).unwrap();
        assert!(finished.truncated);
        // Two whole lines, then nothing: not the short line after the cut.
        assert_eq!(finished.stdout, format!("{0}\n{0}\n", "a".repeat(900)));
    }

    #[test]
    fn a_command_flooding_stderr_neither_fills_the_log_nor_hides_its_exit() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(&dir.path().join("log")).unwrap();
        // About 70 MB of stderr (lines of 1,000 bytes), then exit 3.
        let finished =
            sh("yes \"$(printf '%01000d' 0)\" | head -c 70000000 >&2; exit 3", dir.path()).run(&log).unwrap();
        assert_eq!(finished.code, Some(3));
        let logged = fs_err::metadata(dir.path().join("log")).unwrap().len();
        assert!(logged <= (MAX_LOGGED + (1 << 20)) as u64, "{logged} bytes logged");
        assert!(fs_err::read_to_string(dir.path().join("log")).unwrap().contains("# log cut"));
    }
}

//! One Stamp run per account at a time on a machine: an exclusive lock on a file next to the
//! account's Terraform data dir. Terraform's own state locking stays on as well. Within one
//! process a lock may be taken again while held (a migration holds its environments' locks
//! while its steps open them), and is released when the last holder lets go.

use std::collections::HashMap;
use std::fs::TryLockError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The locks this process holds, by path, with how many holders each has.
type Held = Mutex<HashMap<PathBuf, (Arc<fs_err::File>, usize)>>;

fn held() -> &'static Held {
    static HELD: OnceLock<Held> = OnceLock::new();
    HELD.get_or_init(Mutex::default)
}

/// Whether process `pid` is running (a zombie that no one reaped is not).
fn is_running(pid: i32) -> bool {
    if let Ok(stat) = fs_err::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (command) state ...`: the command may hold spaces and parentheses.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        return !matches!(state, Some("Z" | "X"));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(nix::errno::Errno::ESRCH)
}

/// Held while an account is planned, applied or destroyed; released on drop.
#[derive(Debug)]
pub struct AccountLock {
    path: PathBuf,
    file: Arc<fs_err::File>,
}

impl Drop for AccountLock {
    fn drop(&mut self) {
        let mut held = held().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, count)) = held.get_mut(&self.path) {
            *count -= 1;
            if *count == 0 {
                // The last holder: the file closes with the last `Arc`, which unlocks it.
                held.remove(&self.path);
            }
        }
    }
}

impl AccountLock {
    /// The lock's file descriptor, for the commands of the run to inherit: the lock is held
    /// until the last process holding it exits, even if Stamp is killed.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self.file.file())
    }

    /// Takes the lock, or says who holds it.
    pub fn acquire(path: &Path, account: &str) -> Result<Self, String> {
        let path = std::path::absolute(path).map_err(|e| e.to_string())?;
        let mut held = held().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((file, count)) = held.get_mut(&path) {
            *count += 1;
            return Ok(Self { path, file: Arc::clone(file) });
        }
        let file = Arc::new(Self::take(&path, account)?);
        held.insert(path.clone(), (Arc::clone(&file), 1));
        Ok(Self { path, file })
    }

    fn take(path: &Path, account: &str) -> Result<fs_err::File, String> {
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut file = crate::fsio::open_plain_with(
            fs_err::OpenOptions::new().create(true).truncate(false).read(true).write(true),
            path,
        )
        .map_err(|e| e.to_string())?;
        match file.file().try_lock() {
            Ok(()) => {
                let _ = file.file().set_len(0);
                let _ = writeln!(file, "pid {}", std::process::id());
                Ok(file)
            }
            Err(TryLockError::WouldBlock) => {
                let holder = crate::fsio::plain_text(path, 4096).unwrap_or_default();
                let holder = holder.trim();
                let pid = holder.strip_prefix("pid ").and_then(|p| p.parse::<i32>().ok());
                let gone = pid.is_some_and(|pid| !is_running(pid));
                if gone {
                    return Err(format!(
                        "account `{account}` is still held by a command of a stamp run that was stopped ({holder} is gone, a hook or Terraform it started still runs); wait for it to end, or find it with `fuser {}`",
                        path.display()
                    ));
                }
                Err(format!("account `{account}` is in use by another stamp run ({holder}); wait for it to finish"))
            }
            Err(TryLockError::Error(e)) => Err(format!("cannot lock `{}`: {e}", path.display())),
        }
    }
}

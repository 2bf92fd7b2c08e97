//! One Stamp run per account at a time on a machine: an exclusive lock on a file next to the
//! account's Terraform data dir. Terraform's own state locking stays on as well.

use std::fs::TryLockError;
use std::io::Write;
use std::path::Path;

/// Held while an account is planned, applied or destroyed; released on drop.
#[derive(Debug)]
pub struct AccountLock {
    _file: fs_err::File,
}

impl AccountLock {
    /// Takes the lock, or says who holds it.
    pub fn acquire(path: &Path, account: &str) -> Result<Self, String> {
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| e.to_string())?;
        match file.file().try_lock() {
            Ok(()) => {
                let _ = file.file().set_len(0);
                let _ = writeln!(file, "pid {}", std::process::id());
                Ok(Self { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let holder = fs_err::read_to_string(path).unwrap_or_default();
                Err(format!(
                    "account `{account}` is in use by another stamp run ({}); wait for it to finish",
                    holder.trim()
                ))
            }
            Err(TryLockError::Error(e)) => Err(format!("cannot lock `{}`: {e}", path.display())),
        }
    }
}

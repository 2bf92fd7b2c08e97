//! Ephemeral accounts (playgrounds): `ephemeral: true` with an `owner` and a `ttl`. They are
//! tagged with their owner, creation and expiry time, and `stamp reap` destroys them once
//! expired.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Account;

/// An ephemeral account's owner and lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetime {
    pub owner: String,
    pub ttl: Duration,
    /// `None`: not created yet.
    pub created_at: Option<SystemTime>,
}

impl Lifetime {
    /// The lifetime of an ephemeral account (`None` for others); `Err` names a bad `ttl` or
    /// `created_at`.
    pub fn of(account: &Account) -> Result<Option<Self>, String> {
        if !account.is_ephemeral() {
            return Ok(None);
        }
        let text = |key: &str| account.effective.get(key).and_then(serde_json::Value::as_str);
        let owner = text("owner")
            .ok_or_else(|| format!("ephemeral account `{}` has no `owner`: say who it belongs to", account.name))?;
        let ttl = text("ttl").ok_or_else(|| {
            format!("ephemeral account `{}` has no `ttl`: say how long it may live, e.g. `8h` or `3d`", account.name)
        })?;
        let ttl = humantime::parse_duration(ttl)
            .map_err(|e| format!("`ttl` of account `{}` is not a duration like `8h` or `3d`: {e}", account.name))?;
        let created_at = account
            .created_at
            .as_deref()
            .map(|t| {
                humantime::parse_rfc3339_weak(t).map_err(|e| {
                    format!("`created_at` of account `{}` is not a time like 2026-11-22T08:00:00Z: {e}", account.name)
                })
            })
            .transpose()?;
        expiry(created_at.unwrap_or_else(run_started), ttl)
            .map_err(|problem| format!("account `{}`: {problem}", account.name))?;
        Ok(Some(Self { owner: owner.to_string(), ttl, created_at }))
    }

    /// When it was (or, not created yet, is being) created.
    pub fn created_or(&self, now: SystemTime) -> SystemTime {
        self.created_at.unwrap_or(now)
    }

    /// When it expires ([`Lifetime::of`] checked that this is a time Stamp can write; a later
    /// `now` than the run's start may reach past it, and then gets the last such time).
    pub fn expires_at(&self, now: SystemTime) -> SystemTime {
        expiry(self.created_or(now), self.ttl).unwrap_or(latest())
    }

    /// Created and past its expiry at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.created_at.is_some_and(|created| expiry(created, self.ttl).is_ok_and(|end| end <= now))
    }
}

/// The last second Stamp writes as a time (RFC 3339 has four-digit years).
fn latest() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(253_402_300_799)
}

/// `created + ttl`, or why it is not a time Stamp can write (after the year 9999).
pub fn expiry(created: SystemTime, ttl: Duration) -> Result<SystemTime, String> {
    created.checked_add(ttl).filter(|end| *end <= latest()).ok_or_else(|| {
        format!("a ttl of {} from {} ends after the year 9999", humantime::format_duration(ttl), format_time(created))
    })
}

/// RFC 3339 in UTC, to the second; times outside the years 1970 to 9999 are written as the
/// nearest one inside (the times Stamp writes are checked to be inside first).
pub fn format_time(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time.clamp(UNIX_EPOCH, latest())).to_string()
}

/// The time this run started: an ephemeral account created by this run is tagged, and
/// recorded in the ledger, with it, and a development version without a commit time is made
/// from it, so that one run (both sides of a `diff`, say) has one version.
pub fn run_started() -> SystemTime {
    static STARTED: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
    *STARTED.get_or_init(SystemTime::now)
}

/// The time expiry is judged by: now, or `STAMP_NOW` (RFC 3339) to rehearse ("what would
/// `stamp reap --dry-run` do tomorrow?"); `Err` says why `STAMP_NOW` is not a time.
pub fn judged_at() -> Result<SystemTime, String> {
    match std::env::var("STAMP_NOW") {
        Ok(text) => humantime::parse_rfc3339_weak(&text)
            .map_err(|e| format!("`STAMP_NOW={text}` is not a time like 2026-11-22T08:00:00Z: {e}")),
        Err(_) => Ok(SystemTime::now()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_creation_and_ttl() {
        let created = humantime::parse_rfc3339("2026-11-22T08:00:00Z").unwrap();
        let life = Lifetime { owner: "ana".into(), ttl: Duration::from_secs(8 * 3600), created_at: Some(created) };
        assert_eq!(format_time(life.expires_at(SystemTime::now())), "2026-11-22T16:00:00Z");
        assert!(!life.expired(created + Duration::from_secs(3600)));
        assert!(life.expired(created + Duration::from_secs(8 * 3600)));
        assert!(!Lifetime { created_at: None, ..life }.expired(SystemTime::now()));
    }

    #[test]
    fn expiries_past_the_year_9999_are_errors_not_panics() {
        let created = humantime::parse_rfc3339("9999-12-31T23:00:00Z").unwrap();
        assert!(expiry(created, Duration::from_secs(3600)).is_err());
        assert!(expiry(SystemTime::now(), Duration::from_secs(u64::MAX)).is_err());
        assert!(expiry(SystemTime::now(), humantime::parse_duration("99999999999999d").unwrap()).is_err());
        assert_eq!(format_time(UNIX_EPOCH + Duration::from_secs(u64::MAX / 4)), "9999-12-31T23:59:59Z");
    }
}

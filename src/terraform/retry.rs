//! Retrying transient Terraform failures: throttling, network resets, eventual consistency
//! right after a create, state lock contention. Each pattern belongs to a named category; an
//! archetype can add patterns. Anything else fails at once.

use std::time::Duration;

use regex::Regex;

/// The default transient-error patterns, by category (case-insensitive regular expressions).
pub const DEFAULT_PATTERNS: &[(&str, &str)] = &[
    ("throttling", r"Throttling(Exception)?"),
    ("throttling", r"Rate exceeded"),
    ("throttling", r"TooManyRequests(Exception)?"),
    ("throttling", r"RequestLimitExceeded"),
    ("throttling", r"SlowDown"),
    ("throttling", r"request limit"),
    ("throttling", r"rate limit"),
    ("network", r"connection reset by peer"),
    ("network", r"i/o timeout"),
    ("network", r"TLS handshake timeout"),
    ("network", r"connection refused"),
    ("network", r"unexpected EOF"),
    ("network", r"RequestError: send request failed"),
    ("network", r"net/http: request canceled"),
    ("eventual-consistency", r"NoSuchEntity"),
    ("eventual-consistency", r"InvalidInstanceID\.NotFound"),
    ("eventual-consistency", r"not found.*(after|while).*creat"),
    ("eventual-consistency", r"couldn't find resource"),
    ("eventual-consistency", r"InvalidParameterValue: .*(does not exist|not yet)"),
    ("lock", r"Error acquiring the state lock"),
    ("lock", r"ConditionalCheckFailedException"),
    ("lock", r"state (is )?locked"),
    ("lock", r"already locked for workspace creation"),
    // Two first `init`s of one account on the pg backend race to create its schema.
    ("lock", r"pg_namespace_nspname_index"),
];

/// A compiled retry policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    patterns: Vec<(String, Regex)>,
}

/// Why a failure will be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transient {
    pub category: String,
    pub pattern: String,
}

impl RetryPolicy {
    /// The defaults plus an archetype's settings. `STAMP_RETRY_DELAY` (e.g. `10ms`) overrides the
    /// initial delay, for tests and impatient people.
    pub fn new(settings: &RetrySettings) -> Result<Self, regex::Error> {
        let mut patterns = Vec::new();
        let extra = settings.patterns.iter().flat_map(|(c, ps)| ps.iter().map(move |p| (c.as_str(), p.as_str())));
        for (category, pattern) in DEFAULT_PATTERNS.iter().copied().chain(extra) {
            patterns.push((category.to_string(), crate::config::archetype::retry_pattern(pattern)?));
        }
        let from_env = std::env::var("STAMP_RETRY_DELAY").ok().and_then(|s| humantime::parse_duration(&s).ok());
        Ok(Self {
            max_attempts: settings.max_attempts.unwrap_or(4).max(1),
            initial_delay: from_env.or(settings.initial_delay).unwrap_or(Duration::from_secs(2)),
            max_delay: Duration::from_secs(60),
            patterns,
        })
    }

    /// The first pattern the output matches, if the failure is transient.
    pub fn classify(&self, output: &str) -> Option<Transient> {
        self.patterns
            .iter()
            .find(|(_, regex)| regex.is_match(output))
            .map(|(category, regex)| Transient { category: category.clone(), pattern: regex.as_str()[4..].to_string() })
    }

    /// The delay before retry number `retry` (1-based): doubling, capped.
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.initial_delay.saturating_mul(factor).min(self.max_delay)
    }
}

pub use crate::config::archetype::RetrySettings;
pub use crate::config::hooks::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_transient_errors() {
        let policy = RetryPolicy::new(&RetrySettings::default()).unwrap();
        let t = policy.classify("Error: creating EC2 VPC: ThrottlingException: Rate exceeded").unwrap();
        assert_eq!(t.category, "throttling");
        assert_eq!(policy.classify("Error acquiring the state lock").unwrap().category, "lock");
        assert_eq!(policy.classify("read tcp: connection reset by peer").unwrap().category, "network");
        assert!(policy.classify("Error: Invalid reference").is_none());
    }

    #[test]
    fn archetypes_add_patterns_and_delays_double() {
        let mut settings = RetrySettings { max_attempts: Some(3), ..RetrySettings::default() };
        settings.patterns.insert("quota".into(), vec!["LimitExceeded".into()]);
        let policy = RetryPolicy::new(&settings).unwrap();
        assert_eq!(policy.classify("VcpuLimitExceeded").unwrap().category, "quota");
        assert_eq!(policy.max_attempts, 3);
        assert_eq!(policy.delay(3), policy.initial_delay * 4);
    }
}

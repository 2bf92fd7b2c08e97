//! Checks that need every account at once: unique names, account ids and DNS zones, and no two
//! accounts whose networks overlap.

use std::collections::BTreeSet;
use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::config::catalog::Entry;
use crate::diagnostics::{Diagnostic, Location};

/// A value that must be unique across accounts, by JSON pointer into the effective config.
const UNIQUE: &[(&str, &str, &str)] = &[
    ("/name", "account name", "cross-account.duplicate-name"),
    ("/account_id", "account id", "cross-account.duplicate-account-id"),
    ("/dns/zone", "DNS zone", "cross-account.duplicate-zone"),
];

const CIDR: &str = "/network/cidr";

/// Problems between accounts, given their [`conflicting_pairs`]. Each conflict is reported
/// once, on the account that sorts later, unless `only` names the accounts being checked: then
/// it is reported on each of those.
pub fn check(accounts: &[Entry], pairs: &BTreeSet<(usize, usize)>, only: Option<&BTreeSet<String>>) -> Vec<Diagnostic> {
    let wanted = |a: &Entry| only.is_none_or(|names| names.contains(&a.display));
    let mut out = Vec::new();
    for &(later, earlier) in pairs {
        let (later, earlier) = (&accounts[later], &accounts[earlier]);
        let subjects: Vec<(&Entry, &Entry)> = match only {
            None => vec![(later, earlier)],
            Some(_) => {
                [(later, earlier), (earlier, later)].into_iter().filter(|(subject, _)| wanted(subject)).collect()
            }
        };
        for (subject, other) in subjects {
            out.extend(conflicts(subject, other));
        }
    }
    out
}

/// Index pairs `(later, earlier)` of accounts that share a unique value or whose networks
/// overlap, each pair once: found by grouping equal values and sweeping sorted networks, so
/// this stays fast for thousands of accounts.
pub fn conflicting_pairs(accounts: &[Entry]) -> BTreeSet<(usize, usize)> {
    let mut pairs = BTreeSet::new();
    for (pointer, ..) in UNIQUE {
        // Sorted by value (then position): equal values side by side.
        let mut values: Vec<(&str, usize)> = accounts
            .iter()
            .enumerate()
            .filter_map(|(i, account)| Some((account.fact(pointer)?.value.as_str(), i)))
            .collect();
        values.sort_unstable();
        for group in values.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
            for (n, &(_, later)) in group.iter().enumerate() {
                pairs.extend(group[..n].iter().map(|&(_, earlier)| (later, earlier)));
            }
        }
    }
    let mut networks: Vec<(u32, u32, usize)> = accounts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| cidr(a).map(|n| (u32::from(n.network()), u32::from(n.broadcast()), i)))
        .collect();
    networks.sort_unstable();
    let mut open: Vec<(u32, usize)> = Vec::new();
    for (start, end, i) in networks {
        open.retain(|&(open_end, _)| open_end >= start);
        for &(_, j) in &open {
            pairs.insert((i.max(j), i.min(j)));
        }
        open.push((end, i));
    }
    pairs
}

fn conflicts(subject: &Entry, other: &Entry) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // A sensitive value is not among an entry's facts: it takes part in no comparison, since a
    // conflict would confirm a guess of it.
    for (pointer, what, code) in UNIQUE {
        if let (Some(a), Some(b)) = (subject.fact(pointer), other.fact(pointer))
            && a.value == b.value
        {
            let a = &a.value;
            let by = if other.name() == subject.name() {
                format!("`{}`", other.display)
            } else {
                format!("account `{}`", other.name())
            };
            out.push(
                Diagnostic::error(code, format!("{what} `{a}` is also used by {by}"))
                    .at_opt(location(subject, pointer))
                    .hint(format!("{}: {}", what, where_is(other, pointer)))
                    .for_account(subject.name()),
            );
        }
    }
    if let (Some(a), Some(b)) = (cidr(subject), cidr(other))
        && (a.contains(&b.network()) || b.contains(&a.network()))
    {
        out.push(
            Diagnostic::error(
                "cross-account.overlapping-cidr",
                format!("network `{a}` overlaps `{b}` of account `{}`", other.name()),
            )
            .at_opt(location(subject, CIDR))
            .hint(format!("`{b}` is set at {}", where_is(other, CIDR)))
            .hint("every account needs its own address range so networks can be peered")
            .for_account(subject.name()),
        );
    }
    out
}

fn cidr(account: &Entry) -> Option<Ipv4Net> {
    account.fact(CIDR).and_then(|f| Ipv4Net::from_str(&f.value).ok())
}

fn location(account: &Entry, pointer: &str) -> Option<Location> {
    account
        .fact(pointer)
        .and_then(|f| f.at)
        .map(|(line, column, end)| Location::new(&account.display, line, column).with_end_column(end))
        .or_else(|| Some(Location::file_only(&account.display)))
}

fn where_is(account: &Entry, pointer: &str) -> String {
    match account.fact(pointer) {
        Some(fact) if fact.own && fact.at.is_some() => {
            let (line, column, _) = fact.at.unwrap_or_default();
            format!("`{}:{line}:{column}`", account.display)
        }
        _ => format!("`{}`", account.display),
    }
}

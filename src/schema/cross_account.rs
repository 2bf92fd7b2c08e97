//! Checks that need every account at once: unique names, account ids and DNS zones, and no two
//! accounts whose networks overlap.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::config::Account;
use crate::diagnostics::{Diagnostic, Location};

/// A value that must be unique across accounts, by JSON pointer into the effective config.
const UNIQUE: &[(&str, &str, &str)] = &[
    ("/name", "account name", "cross-account.duplicate-name"),
    ("/account_id", "account id", "cross-account.duplicate-account-id"),
    ("/dns/zone", "DNS zone", "cross-account.duplicate-zone"),
];

const CIDR: &str = "/network/cidr";

/// Problems between accounts. Each conflict is reported once, on the account that sorts later,
/// unless `only` names the accounts being checked: then it is reported on each of those.
/// Conflicting pairs are found by grouping equal values and sweeping sorted networks, so this
/// stays fast for thousands of accounts.
pub fn check(accounts: &[Account], only: Option<&BTreeSet<String>>) -> Vec<Diagnostic> {
    let wanted = |a: &Account| only.is_none_or(|names| names.contains(&a.display));
    let mut out = Vec::new();
    for (later, earlier) in conflicting_pairs(accounts) {
        let (later, earlier) = (&accounts[later], &accounts[earlier]);
        let subjects: Vec<(&Account, &Account)> = match only {
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
/// overlap, each pair once.
pub fn conflicting_pairs(accounts: &[Account]) -> BTreeSet<(usize, usize)> {
    let mut pairs = BTreeSet::new();
    for (pointer, ..) in UNIQUE {
        let mut by_value: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, account) in accounts.iter().enumerate() {
            if let Some(value) = account.str_at(pointer).filter(|_| !account.is_sensitive(pointer)) {
                by_value.entry(value).or_default().push(i);
            }
        }
        for group in by_value.values().filter(|g| g.len() > 1) {
            for (n, &later) in group.iter().enumerate() {
                pairs.extend(group[..n].iter().map(|&earlier| (later, earlier)));
            }
        }
    }
    let mut networks: Vec<(u32, u32, usize)> = accounts
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.is_sensitive(CIDR))
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

fn conflicts(subject: &Account, other: &Account) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (pointer, what, code) in UNIQUE {
        // A sensitive value takes part in no comparison: a conflict would confirm a guess of it.
        if subject.is_sensitive(pointer) || other.is_sensitive(pointer) {
            continue;
        }
        if let (Some(a), Some(b)) = (subject.str_at(pointer), other.str_at(pointer))
            && a == b
        {
            let by = if other.name == subject.name {
                format!("`{}`", other.display)
            } else {
                format!("account `{}`", other.name)
            };
            out.push(
                Diagnostic::error(code, format!("{what} `{a}` is also used by {by}"))
                    .at_opt(location(subject, pointer))
                    .hint(format!("{}: {}", what, where_is(other, pointer)))
                    .for_account(&subject.name),
            );
        }
    }
    if let (Some(a), Some(b)) = (cidr(subject), cidr(other))
        && (a.contains(&b.network()) || b.contains(&a.network()))
        && !subject.is_sensitive(CIDR)
        && !other.is_sensitive(CIDR)
    {
        out.push(
            Diagnostic::error(
                "cross-account.overlapping-cidr",
                format!("network `{a}` overlaps `{b}` of account `{}`", other.name),
            )
            .at_opt(location(subject, CIDR))
            .hint(format!("`{b}` is set at {}", where_is(other, CIDR)))
            .hint("every account needs its own address range so networks can be peered")
            .for_account(&subject.name),
        );
    }
    out
}

fn cidr(account: &Account) -> Option<Ipv4Net> {
    account.str_at(CIDR).and_then(|s| Ipv4Net::from_str(s).ok())
}

fn location(account: &Account, pointer: &str) -> Option<Location> {
    account
        .positions
        .value(pointer)
        .map(|p| Location::new(&account.display, p.line, p.column).with_end_column(p.end_column.unwrap_or(0)))
        .or_else(|| Some(Location::file_only(&account.display)))
}

fn where_is(account: &Account, pointer: &str) -> String {
    match account.positions.value(pointer) {
        Some(p) if account.own.pointer(pointer).is_some() => {
            format!("`{}:{}:{}`", account.display, p.line, p.column)
        }
        _ => format!("`{}`", account.display),
    }
}

//! Checks that need every account at once: unique names, account ids and DNS zones, and no two
//! accounts whose networks overlap.

use std::collections::BTreeSet;
use std::str::FromStr;

use ipnet::Ipv4Net;
use rayon::prelude::*;

use crate::config::catalog::{CIDR, Entry};
use crate::diagnostics::{Diagnostic, Location};

/// A value that must be unique across accounts, by JSON pointer into the effective config.
const UNIQUE: &[(&str, &str, &str)] = &[
    ("/name", "account name", "cross-account.duplicate-name"),
    ("/account_id", "account id", "cross-account.duplicate-account-id"),
    ("/dns/zone", "DNS zone", "cross-account.duplicate-zone"),
];

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
        .filter_map(|(i, a)| a.summary.network.map(|(start, end)| (start, end, i)))
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

/// The [`conflicting_pairs`] that hold one of the accounts at `subjects` (indices): each of
/// those compared with every account, which for a few accounts is cheaper than grouping all.
pub fn conflicting_pairs_with(accounts: &[Entry], subjects: &BTreeSet<usize>) -> BTreeSet<(usize, usize)> {
    let interval = |a: &Entry| a.summary.network;
    let mut pairs = BTreeSet::new();
    for &s in subjects {
        let subject = &accounts[s];
        let values: Vec<(&str, &str)> =
            UNIQUE.iter().filter_map(|(p, ..)| Some((*p, subject.fact(p)?.value.as_str()))).collect();
        let network = interval(subject);
        let conflicting: Vec<usize> = (0..accounts.len())
            .into_par_iter()
            .filter(|&i| {
                let other = &accounts[i];
                let shared = || values.iter().any(|&(p, v)| other.fact(p).is_some_and(|f| f.value == v));
                let overlap = || overlapping(network, interval(other));
                i != s && (shared() || overlap())
            })
            .collect();
        pairs.extend(conflicting.into_iter().map(|i| (i.max(s), i.min(s))));
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
    if overlapping(subject.summary.network, other.summary.network)
        && let (Some(a), Some(b)) = (cidr(subject), cidr(other))
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

/// Whether two networks (first and last address, as [`crate::config::catalog::Summary::network`] holds them) share an
/// address.
fn overlapping(a: Option<(u32, u32)>, b: Option<(u32, u32)>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a.0 <= b.1 && b.0 <= a.1)
}

/// The account's network as written, for messages.
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::config::catalog::{Fact, Summary};

    fn entry(name: &str, facts: &[(&'static str, String)]) -> Entry {
        let fact =
            |(pointer, value): &(&'static str, String)| Fact { pointer, value: value.clone(), at: None, own: true };
        Entry {
            display: format!("accounts/{name}.yaml"),
            path: format!("accounts/{name}.yaml").into(),
            elsewhere: None,
            content: String::new(),
            load_key: String::new(),
            summary: Arc::new(Summary::with_facts(name, facts.iter().map(fact).collect())),
            slot: crate::config::Slot::Blue,
            created_at: None,
            ledger_damage: Vec::new(),
        }
    }

    proptest! {
        /// The pairs of a few accounts are those of the whole catalog that hold one of them.
        #[test]
        fn pairs_with_a_few_accounts_are_those_of_all_that_hold_them(
            accounts in proptest::collection::vec((0..6u8, 0..4u8, proptest::option::of((0..4u8, 22..26u8))), 1..24),
            picks in proptest::collection::btree_set(0..24usize, 0..4),
        ) {
            let entries: Vec<Entry> = accounts
                .iter()
                .enumerate()
                .map(|(i, (name, id, net))| {
                    let mut facts = vec![("/name", format!("n{name}")), ("/account_id", format!("{id}"))];
                    if i % 3 == 0 {
                        facts.push(("/dns/zone", format!("z{id}.example")));
                    }
                    if let Some((third, bits)) = net {
                        facts.push(("/network/cidr", format!("10.0.{}.0/{bits}", third * 2)));
                    }
                    entry(&format!("a{i}"), &facts)
                })
                .collect();
            let subjects: BTreeSet<usize> = picks.into_iter().filter(|&p| p < entries.len()).collect();
            let all: BTreeSet<(usize, usize)> = conflicting_pairs(&entries)
                .into_iter()
                .filter(|(a, b)| subjects.contains(a) || subjects.contains(b))
                .collect();
            prop_assert_eq!(conflicting_pairs_with(&entries, &subjects), all);
        }

        /// Two networks overlap, by the addresses their summaries hold, exactly when one
        /// contains the other's first address (host bits set or not).
        #[test]
        fn networks_overlap_when_one_contains_the_other(a in any::<u32>(), a_bits in 0..=32u8, b in any::<u32>(), b_bits in 0..=32u8) {
            let (a, b) = (Ipv4Net::new(a.into(), a_bits).unwrap(), Ipv4Net::new(b.into(), b_bits).unwrap());
            let network = |net: &Ipv4Net| crate::config::catalog::network_of(&[Fact { pointer: CIDR, value: net.to_string(), at: None, own: true }]);
            prop_assert_eq!(
                overlapping(network(&a), network(&b)),
                a.contains(&b.network()) || b.contains(&a.network())
            );
        }
    }
}

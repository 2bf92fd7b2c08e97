//! `stamp list` reports: the project's accounts as a table.

use super::table::table;
use crate::ops::list::AccountSummary;

/// The accounts with their archetype, environment, region and whether they are protected.
pub fn accounts_table(accounts: &[AccountSummary]) -> String {
    let rows: Vec<[String; 5]> = accounts
        .iter()
        .map(|a| {
            [
                a.name.clone(),
                a.archetype.clone(),
                a.environment.clone(),
                a.region.clone().unwrap_or_else(|| "-".into()),
                if a.protected { "protected".into() } else { String::new() },
            ]
        })
        .collect();
    table(["ACCOUNT", "ARCHETYPE", "ENVIRONMENT", "REGION", ""], &rows)
}

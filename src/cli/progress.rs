//! Progress of multi-account runs on stderr: a spinner line per account on a terminal, plain
//! `[account] phase` lines otherwise, nothing with `--quiet`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::pipeline::account::Progress;

pub enum Shown {
    Bars { multi: MultiProgress, bars: Mutex<BTreeMap<String, ProgressBar>>, total: Mutex<Option<ProgressBar>> },
    Lines { started: Mutex<BTreeMap<String, Instant>> },
    Nothing,
}

impl Shown {
    pub fn new(quiet: bool) -> Self {
        if quiet {
            Self::Nothing
        } else if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            Self::Bars { multi: MultiProgress::new(), bars: Mutex::new(BTreeMap::new()), total: Mutex::new(None) }
        } else {
            Self::Lines { started: Mutex::new(BTreeMap::new()) }
        }
    }

    /// Ends every spinner, leaving its last line.
    pub fn finish(&self) {
        if let Self::Bars { bars, total, .. } = self {
            for bar in bars.lock().expect("bars lock").values() {
                bar.finish();
            }
            if let Some(bar) = total.lock().expect("total lock").take() {
                bar.finish_and_clear();
            }
        }
    }
}

impl Progress for Shown {
    fn warning(&self, message: &str) {
        let line = format!("warning: {}", crate::text::one_line(message));
        match self {
            Self::Bars { multi, .. } => {
                let _ = multi.println(line);
            }
            _ => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
        }
    }

    fn start(&self, accounts: usize) {
        if let Self::Bars { multi, total, .. } = self
            && accounts > 1
        {
            let bar = multi.add(ProgressBar::new(accounts as u64));
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} accounts ({elapsed})").expect("valid template"),
            );
            *total.lock().expect("total lock") = Some(bar);
        }
    }

    fn account_done(&self, _account: &str) {
        if let Self::Bars { total, .. } = self
            && let Some(bar) = total.lock().expect("total lock").as_ref()
        {
            bar.inc(1);
        }
    }

    fn phase(&self, account: &str, phase: &str) {
        match self {
            Self::Nothing => {}
            Self::Lines { started } => {
                let mut started = started.lock().expect("progress lock");
                let start = *started.entry(account.to_string()).or_insert_with(Instant::now);
                let _ =
                    writeln!(std::io::stderr().lock(), "[{account}] {phase} ({:.1}s)", start.elapsed().as_secs_f64());
            }
            Self::Bars { multi, bars, .. } => {
                let mut bars = bars.lock().expect("progress lock");
                let bar = bars.entry(account.to_string()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} ({elapsed})")
                            .expect("valid template"),
                    );
                    bar.set_prefix(account.to_string());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_message(phase.to_string());
            }
        }
    }
}

//! Progress of multi-account runs on stderr: a spinner line per account on a terminal, plain
//! `[account] phase` lines otherwise, nothing with `--quiet`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::pipeline::account::Progress;

pub enum Shown {
    Bars { multi: MultiProgress, bars: Mutex<BTreeMap<String, ProgressBar>> },
    Lines { started: Mutex<BTreeMap<String, Instant>> },
    Nothing,
}

impl Shown {
    pub fn new(quiet: bool) -> Self {
        if quiet {
            Self::Nothing
        } else if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            Self::Bars { multi: MultiProgress::new(), bars: Mutex::new(BTreeMap::new()) }
        } else {
            Self::Lines { started: Mutex::new(BTreeMap::new()) }
        }
    }

    /// Ends every spinner, leaving its last line.
    pub fn finish(&self) {
        if let Self::Bars { bars, .. } = self {
            for bar in bars.lock().expect("bars lock").values() {
                bar.finish();
            }
        }
    }
}

impl Progress for Shown {
    fn phase(&self, account: &str, phase: &str) {
        match self {
            Self::Nothing => {}
            Self::Lines { started } => {
                let mut started = started.lock().expect("progress lock");
                let start = *started.entry(account.to_string()).or_insert_with(Instant::now);
                let _ =
                    writeln!(std::io::stderr().lock(), "[{account}] {phase} ({:.1}s)", start.elapsed().as_secs_f64());
            }
            Self::Bars { multi, bars } => {
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

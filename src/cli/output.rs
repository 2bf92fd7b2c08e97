//! Where the CLI writes: reports to stdout, diagnostics and status to stderr, colour only on a
//! terminal and never with `--no-color` or `NO_COLOR`.

use std::io::{IsTerminal, Write};

use super::Cli;
use crate::diagnostics::{self, Diagnostic, Sources};

pub struct Output {
    color: bool,
    pub quiet: bool,
    verbose: bool,
}

impl Output {
    pub fn new(cli: &Cli) -> Self {
        let no_color = cli.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self { color: !no_color && std::io::stderr().is_terminal(), quiet: cli.quiet, verbose: cli.verbose }
    }

    /// The command's report.
    pub fn report(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// A status line (not with `--quiet`).
    pub fn status(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// A detail line (only with `--verbose`).
    pub fn detail(&self, text: &str) {
        if self.verbose {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// A problem that did not stop the command: shown even with `--quiet`.
    pub fn warning(&self, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "warning: {}", crate::text::one_line(message));
    }

    /// An error of one or more lines, each escaped.
    pub fn error(&self, message: &str) {
        let lines: Vec<_> = message.lines().map(crate::text::one_line).collect();
        let _ = writeln!(std::io::stderr().lock(), "error: {}", lines.join("\n"));
    }

    pub fn diagnostics(&self, diagnostics: &[Diagnostic], sources: &Sources) {
        if diagnostics.is_empty() {
            return;
        }
        let text = diagnostics::render_text(diagnostics, sources, self.color);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

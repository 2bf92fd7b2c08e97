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

    /// An error of one or more lines, each escaped; a further line is indented, so that no
    /// line break a value brings into the message starts a line of its own (`error: ...`).
    pub fn error(&self, message: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{}", error_text(message));
    }

    pub fn diagnostics(&self, diagnostics: &[Diagnostic], sources: &Sources) {
        if diagnostics.is_empty() {
            return;
        }
        let text = diagnostics::render_text(diagnostics, sources, self.color);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// The text [`Output::error`] shows for `message`.
fn error_text(message: &str) -> String {
    let mut lines = message.lines().map(crate::text::one_line);
    let mut text = format!("error: {}", lines.next().unwrap_or_default());
    for line in lines {
        text.push('\n');
        if !line.is_empty() {
            text.push_str("  ");
            text.push_str(&line);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn no_further_line_of_an_error_starts_at_its_margin() {
        let text = super::error_text("cannot apply `x\nerror: forged`\n\nUsage: \u{1b}[2J");
        assert_eq!(text, "error: cannot apply `x\n  error: forged`\n\n  Usage: \\u{1b}[2J");
    }
}

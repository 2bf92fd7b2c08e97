//! How an operation's error reaches the user. Each operation has its own `thiserror` type
//! (`DeployError`, `MigrateError`, ...) whose variants carry what went wrong (paths, sources,
//! the report of a render that failed); this trait turns any of them into diagnostics (a
//! stable code, the message, hints, and a nested report kept whole) and says whether the
//! command line was at fault, which the CLI maps to its one `ExitStatus`.

use crate::diagnostics::{Diagnostic, Report, Sources};

/// An operation's error, as the command line shows it. An error that wraps another (the
/// report of a render that failed, the error of an operation this one ran) names it as its
/// [`wraps`](OpError::wraps) and is shown as that one: its code, hints, diagnostics and exit
/// status.
pub trait OpError: std::error::Error {
    /// The diagnostic's stable, machine-readable code (`migrate.locked`) when the error is
    /// this operation's own.
    fn own_code(&self) -> &'static str;

    /// The error this one wraps, shown in its place.
    fn wraps(&self) -> Option<&dyn OpError> {
        None
    }

    fn code(&self) -> &'static str {
        self.wraps().map_or_else(|| self.own_code(), OpError::code)
    }

    /// The command line was wrong (an option that does not apply, a missing account), rather
    /// than the run failing.
    fn is_usage(&self) -> bool {
        self.wraps().is_some_and(OpError::is_usage)
    }

    /// Hints shown under the message.
    fn hints(&self) -> Vec<String> {
        self.wraps().map(OpError::hints).unwrap_or_default()
    }

    /// Diagnostics this error carries whole (a render that failed: files, lines, snippets).
    fn nested(&self) -> Option<&Report> {
        self.wraps().and_then(OpError::nested)
    }

    /// The diagnostics to show: the nested report whole, or one error with its code and hints.
    fn to_report(&self) -> Report {
        if let Some(report) = self.nested() {
            return report.clone();
        }
        // Its first line the message, each further line (Terraform's own lines, say) a detail.
        let text = self.to_string();
        let mut lines = text.lines();
        let first = Diagnostic::error(self.code(), lines.next().unwrap_or_default());
        let diagnostic = lines.fold(first, Diagnostic::detail);
        let diagnostic = self.hints().into_iter().fold(diagnostic, Diagnostic::hint);
        Report::new(vec![diagnostic], Sources::default())
    }
}

/// A report of diagnostics is an error of its own (loading a project, validating accounts).
impl OpError for Report {
    fn own_code(&self) -> &'static str {
        self.diagnostics.first().map_or("error", |d| d.code)
    }

    fn nested(&self) -> Option<&Report> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Location;
    use crate::ops::data::CopyError;
    use crate::ops::deploy::DeployError;

    #[test]
    fn an_error_becomes_one_diagnostic_with_its_code_and_hints() {
        let missing = DeployError::TerraformMissing("no `terraform` on PATH".into());
        let report = missing.to_report();
        assert_eq!(report.diagnostics.len(), 1);
        assert_eq!(
            (report.diagnostics[0].code, report.diagnostics[0].message.as_str()),
            ("terraform.missing", "no `terraform` on PATH")
        );
        assert!(!report.diagnostics[0].hints.is_empty());
        assert!(!missing.is_usage());
        assert!(DeployError::Usage("name the accounts, or pass `--all`").is_usage());
    }

    #[test]
    fn a_nested_report_is_kept_whole_through_the_layers() {
        let render = Report::new(
            vec![
                Diagnostic::error("render.undefined", "undefined value `config.x`")
                    .at(Location::new("blueprints/b/main.tf.j2", 40, 6))
                    .hint("guard optional keys"),
                Diagnostic::error("schema.required", "missing `network`"),
            ],
            Sources::default(),
        );
        let error = CopyError::Deploy(DeployError::Invalid(render));
        let report = error.to_report();
        assert_eq!(report.diagnostics.len(), 2, "flattened: {report:?}");
        assert_eq!(report.diagnostics[0].location.as_ref().map(|l| l.line), Some(40));
        assert_eq!(report.diagnostics[0].hints, ["guard optional keys"]);
        assert_eq!(error.code(), "render.undefined");
    }
}

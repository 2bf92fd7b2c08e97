//! How a command ended, and the one mapping of that to exit codes.
//!
//! | command          | 0                | 1                        | 2                         |
//! |------------------|------------------|--------------------------|---------------------------|
//! | `plan`           | no changes       | any error (usage too)    | changes present           |
//! | `diff`           | identical        | different                | any error (usage too)     |
//! | every other one  | success          | failure, problems found  | usage error               |
//!
//! (`README.md` has the same table; `tests/cli.rs` pins it.)

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done (`plan`: no changes; `diff`: identical).
    Success,
    /// `plan`: changes are present; `diff`: the two sides differ.
    Found,
    /// The command failed or found problems.
    Failure,
    /// The command line was wrong (unknown flag, missing account, ...).
    Usage,
}

/// Which exit codes a command follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// 0 success, 1 failure, 2 usage error.
    Standard,
    /// `terraform plan -detailed-exitcode`: 0 no changes, 2 changes, 1 any error.
    DetailedExitCode,
    /// `diff(1)`: 0 identical, 1 different, 2 any error.
    Diff,
}

impl ExitStatus {
    /// `Failure` when `failed`, else `Success`.
    pub fn failed_if(failed: bool) -> Self {
        if failed { Self::Failure } else { Self::Success }
    }

    /// The exit code under `convention`.
    pub fn code(self, convention: Convention) -> u8 {
        match (convention, self) {
            (_, Self::Success) => 0,
            (Convention::Standard, Self::Found) => 0,
            (Convention::Standard, Self::Failure) => 1,
            (Convention::Standard, Self::Usage) => 2,
            (Convention::DetailedExitCode, Self::Found) => 2,
            (Convention::DetailedExitCode, Self::Failure | Self::Usage) => 1,
            (Convention::Diff, Self::Found) => 1,
            (Convention::Diff, Self::Failure | Self::Usage) => 2,
        }
    }
}

/// The convention of the command named by `name`.
pub fn convention_of(name: &str) -> Convention {
    match name {
        "plan" => Convention::DetailedExitCode,
        "diff" => Convention::Diff,
        _ => Convention::Standard,
    }
}

/// The subcommand named in raw arguments (for errors found before they parse): the first
/// argument that is not an option or the value of a global option.
pub fn subcommand_in(args: &[std::ffi::OsString]) -> Option<String> {
    let mut words = args.iter().skip(1).map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        if word == "--project" {
            words.next();
        } else if !word.starts_with('-') {
            return Some(word.into_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_means_one_thing_per_command() {
        use Convention::{DetailedExitCode, Diff, Standard};
        use ExitStatus::{Failure, Found, Success, Usage};
        let table = [(Standard, [0, 0, 1, 2]), (DetailedExitCode, [0, 2, 1, 1]), (Diff, [0, 1, 2, 2])];
        for (convention, codes) in table {
            assert_eq!([Success, Found, Failure, Usage].map(|s| s.code(convention)), codes, "{convention:?}");
        }
        let args: Vec<std::ffi::OsString> = ["stamp", "--project", "plan", "-q", "diff", "x"].map(Into::into).to_vec();
        assert_eq!(subcommand_in(&args).as_deref(), Some("diff"));
    }
}

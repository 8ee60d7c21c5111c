//! Exit codes, and printing an error chain with its hint.

use std::process::ExitCode;

/// What `wisp` exits with. Scripts may rely on these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Anything not below.
    Failure = 1,
    /// Bad command-line usage (clap uses 2 as well).
    Usage = 2,
    /// The server could not be reached.
    Unreachable = 3,
    /// The server refused the request (a 4xx problem).
    Refused = 4,
    /// The function ran and failed (trap, timeout, out of memory, …).
    FunctionFailed = 5,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// An error that knows its exit code and how to fix it.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Prints `error: …`, its causes and hint to stderr; returns the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    let cli = err.chain().find_map(|e| e.downcast_ref::<CliError>());
    if let Some(hint) = cli.and_then(|c| c.hint.as_deref()) {
        eprintln!("  hint: {hint}");
    }
    cli.map_or(Exit::Failure, |c| c.exit).into()
}

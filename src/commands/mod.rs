//! One module per subcommand: its clap arguments and its `run`.

pub mod alarms;
pub mod audit;
pub mod breakers;
pub mod bucket;
pub mod cluster;
pub mod deploy;
pub mod dlq;
pub mod init;
pub mod invocations;
pub mod invoke;
pub mod keys;
pub mod kv;
pub mod logs;
pub mod ls;
pub mod ns;
pub mod object;
pub mod queue;
pub mod rm;
pub mod secret;
pub mod serve;
pub mod topic;
pub mod trace;
pub mod up;
pub mod usage;
pub mod versions;
pub mod watch;

use crate::exit::{CliError, Exit};

/// A function name from the command line, checked before any request is made.
pub fn function_name(name: &str) -> anyhow::Result<wisp_core::FunctionName> {
    wisp_core::FunctionName::new(name).map_err(|e| CliError::new(Exit::Usage, e.to_string()).into())
}

//! Container logs in docker's json-file format.
//!
//! A container's output goes through its shim to `hullctl logger` (a
//! `binary://` logging program, see [`uri`] and [`logger`]), which writes
//! `<root>/containers/<id>/<id>-json.log` and rotates it by size into
//! `<id>-json.log.1` (the newest) to `.N`. `hullctl logs` ([`command`])
//! reads those files back through [`reader`].

mod command;
pub mod logger;
pub mod options;
pub mod reader;
mod record;
mod segment;
mod tail;
mod time;
pub mod uri;
mod writer;

use std::path::{Path, PathBuf};

use clap::Args;

pub use command::{run, LogsArgs};
pub use options::LogOptions;
pub use uri::logger_uri;

/// Returns the path of a container's log in its directory:
/// `<container_dir>/<id>-json.log`.
pub fn log_path(container_dir: &Path, id: &str) -> PathBuf {
    container_dir.join(format!("{id}-json.log"))
}

/// Arguments of `hullctl logger`, which a shim passes from the query of a
/// `binary://` URI built by [`uri::logger_uri`].
#[derive(Args, Debug)]
pub struct LoggerArgs {
    /// Log file to write.
    pub log_path: PathBuf,
    /// Options as KEY VALUE pairs: max-size BYTES, max-file COUNT, and
    /// exit-arg ARG for each element of the command run once the output
    /// ends.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "KEY VALUE"
    )]
    pub options: Vec<String>,
}

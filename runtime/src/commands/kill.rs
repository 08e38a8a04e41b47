//! `hull kill ID [SIGNAL]`: signals the container's init, or with `--all`
//! every process of the container. The signal defaults to SIGTERM.

use super::Global;
use crate::container::Container;
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Send the signal to all processes in the container
    #[arg(short, long)]
    pub all: bool,
    /// Container id
    pub id: String,
    /// Signal name (KILL, SIGKILL) or number; 0 only checks that the
    /// processes exist
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let signal = crate::signal::parse_for_kill(&args.signal)?;
    let container = Container::load(&global.root, &args.id)?;
    crate::lifecycle::signal(&container, signal, args.all)?;
    Ok(0)
}

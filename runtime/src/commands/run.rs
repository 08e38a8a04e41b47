//! `hull run ID`: create and start in one step. In the foreground it waits
//! for the container's init, forwards signals to it, deletes the container
//! when it exits, and exits with its status (128+N after signal N).

use nix::unistd::Pid;

use super::foreground::Foreground;
use super::{CreateFlags, Global};
use crate::{lifecycle, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after its process exits
    #[arg(long)]
    pub keep: bool,
    /// Do not make this process a subreaper for the container's orphans
    #[arg(long)]
    pub no_subreaper: bool,
    /// Container id
    pub id: String,
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let options = args.flags.options(global, &args.id);
    if args.detach {
        let container = crate::process::create(&options)?;
        if let Err(e) = lifecycle::start(&container) {
            let _ = lifecycle::delete(&container, true);
            return Err(e);
        }
        return Ok(0);
    }

    let mut foreground = Foreground::new(!args.no_subreaper)?;
    let console = options
        .console_socket
        .is_none()
        .then(|| foreground.console_socket())
        .flatten();
    let container = crate::process::create_with_console(&options, console)?;
    let terminal = options.console_socket.is_none()
        && container
            .state
            .config
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
    if terminal {
        if let Err(e) = foreground.attach_terminal() {
            let _ = lifecycle::delete(&container, true);
            return Err(e);
        }
    }
    if let Err(e) = lifecycle::start(&container) {
        let _ = lifecycle::delete(&container, true);
        return Err(e);
    }
    let status = foreground.wait(Pid::from_raw(container.state.init_pid))?;
    if !args.keep {
        lifecycle::delete(&container, true)?;
    }
    Ok(status)
}

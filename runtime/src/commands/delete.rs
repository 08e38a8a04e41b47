//! `hull delete ID`: removes a stopped or created container. With
//! `--force`, it also removes a running or paused one, after killing it.

use super::Global;
use crate::container::Container;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Forcibly delete the container if it is still running (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Container id
    pub id: String,
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let container = match Container::load(&global.root, &args.id) {
        Ok(container) => container,
        Err(Error::NotExist(id)) => {
            // A create killed midway leaves a directory without a record.
            crate::lifecycle::remove_leftover(&global.root, &id)?;
            // Deleting what is already gone succeeds with --force, as in runc.
            return if args.force {
                Ok(0)
            } else {
                Err(Error::NotExist(id))
            };
        }
        Err(e) => return Err(e),
    };
    crate::lifecycle::delete(&container, args.force)?;
    Ok(0)
}

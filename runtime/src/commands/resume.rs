//! `hull resume ID`: thaws the processes of a paused container.

use super::Global;
use crate::container::Container;
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id
    pub id: String,
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let container = Container::load(&global.root, &args.id)?;
    crate::lifecycle::set_paused(&container, false)?;
    Ok(0)
}

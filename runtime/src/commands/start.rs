//! `hull start ID`: lets a created container's init exec its program.

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
    crate::lifecycle::start(&container)?;
    Ok(0)
}

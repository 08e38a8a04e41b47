//! `hull create ID`: sets up the container and leaves its init waiting for
//! `start`.

use super::{CreateFlags, Global};
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Container id
    pub id: String,
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    crate::process::create(&args.flags.options(global, &args.id))?;
    Ok(0)
}

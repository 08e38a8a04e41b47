//! `hull state ID`: prints the container's OCI state as JSON.

use super::Global;
use crate::container::Container;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Container id
    pub id: String,
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let container = Container::load(&global.root, &args.id)?;
    let mut state = container.oci_state();
    // runc fills the owner in `list` only.
    state.owner.clear();
    let text = serde_json::to_string_pretty(&state)
        .map_err(|e| Error::Message(format!("encode state of {}: {e}", args.id)))?;
    // runc prints the state without a trailing newline.
    print!("{text}");
    Ok(0)
}

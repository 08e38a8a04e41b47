//! `hull features`: what this build of hull supports, as JSON.

use super::Global;
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_global: &Global, _args: &Args) -> Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&crate::features::features()).expect("features encode")
    );
    Ok(0)
}

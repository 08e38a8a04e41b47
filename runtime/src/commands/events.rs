//! `hull events [--stats] [--interval DURATION] ID`: the container's
//! resource usage and OOM kills as JSON lines, in runc 1.1's format.

use std::time::Duration;

use super::Global;
use crate::container::{Container, Status};
use crate::events::{self, Event};
use crate::units::parse_go_duration;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Time between two stats events, as a Go duration such as 5s or 500ms
    #[arg(long, default_value = "5s", value_parser = parse_interval, allow_hyphen_values = true)]
    pub interval: Duration,
    /// Print one stats event and exit
    #[arg(long)]
    pub stats: bool,
    /// Container id
    pub id: String,
}

/// Parses `--interval`. A negative duration becomes zero, so that it fails
/// with the "must be greater than 0" error as in runc 1.1.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match text.strip_prefix('-') {
        Some(magnitude) => parse_go_duration(magnitude).map(|_| Duration::ZERO),
        None => parse_go_duration(text),
    }
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let container = Container::load(&global.root, &args.id)?;
    if args.interval.is_zero() {
        return Err(Error::Message(
            "duration interval must be greater than 0".into(),
        ));
    }
    if container.status() == Status::Stopped {
        return Err(Error::Message(format!(
            "container with id {} is not running",
            container.id()
        )));
    }
    let mut out = std::io::stdout().lock();
    if args.stats {
        let stats = events::read_stats(&container)?;
        let event = Event {
            kind: "stats",
            id: container.id(),
            data: Some(&stats),
        };
        std::io::Write::write_all(&mut out, event.to_line().as_bytes())
            .map_err(|e| Error::io("write event", e))?;
        return Ok(0);
    }
    events::stream(&container, args.interval, &mut out)?;
    Ok(0)
}

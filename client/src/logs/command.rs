//! `hullctl logs`: prints a container's output from its json-file log,
//! stdout to stdout and stderr to stderr, as `docker logs` does.

use std::io::BufWriter;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::reader::{is_broken_pipe, read_logs, ReadOptions};
use super::time::parse_time;
use crate::paths::Paths;
use crate::GlobalArgs;

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Keep printing new output until the container exits.
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to print from the end of the log, or "all".
    #[arg(short = 'n', long, value_name = "N|all", default_value = "all", value_parser = parse_tail)]
    tail: Tail,
    /// Print only output written at or after TIME: an RFC 3339 time, a Unix
    /// timestamp, or a duration before now such as 10m or 1h30m.
    #[arg(long, value_name = "TIME", value_parser = parse_time_now)]
    since: Option<DateTime<Utc>>,
    /// Print only output written at or before TIME, in the forms of --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time_now)]
    until: Option<DateTime<Utc>>,
    /// Start each line with the time it was written (RFC 3339, nanoseconds).
    #[arg(short, long)]
    timestamps: bool,
    /// Container name, id or unique id prefix.
    container: String,
}

/// The value of `--tail`: a number of lines, or `None` for all.
#[derive(Debug, Clone, Copy)]
pub struct Tail(Option<usize>);

fn parse_tail(value: &str) -> Result<Tail, String> {
    if value == "all" {
        return Ok(Tail(None));
    }
    value
        .parse()
        .map(|lines| Tail(Some(lines)))
        .map_err(|_| format!("invalid line count {value:?}: expected a whole number or \"all\""))
}

fn parse_time_now(value: &str) -> Result<DateTime<Utc>, String> {
    parse_time(value, Utc::now()).map_err(|error| error.to_string())
}

/// Runs `hullctl logs` on a blocking thread: reading files and waiting for
/// inotify events do not suit the async runtime's workers.
pub async fn run(global: &GlobalArgs, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let paths = Paths::new(global);
    tokio::task::spawn_blocking(move || print_logs(&paths, &args))
        .await
        .context("the log reader thread failed")?
}

fn print_logs(paths: &Paths, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let store = crate::container::Store::new(paths);
    let record = store.find(&args.container)?;
    let id = record.id;
    let log_path = super::log_path(&store.container_dir(&id), &id);
    let options = ReadOptions {
        follow: args.follow,
        tail: args.tail.0,
        since: args.since,
        until: args.until,
        timestamps: args.timestamps,
    };
    let stdout = BufWriter::new(std::io::stdout().lock());
    let stderr = BufWriter::new(std::io::stderr().lock());
    let handle = tokio::runtime::Handle::current();
    let read = read_logs(
        &log_path,
        &options,
        stdout,
        stderr,
        || handle.block_on(crate::container::has_exited(&store, &id)),
        None,
    );
    let invalid = match read {
        Ok(invalid) => invalid,
        Err(err) if is_broken_pipe(&err) => return Ok(ExitCode::SUCCESS),
        Err(err) => return Err(err),
    };
    if invalid > 0 {
        eprintln!(
            "hullctl: skipped {invalid} lines of {} that are not log records",
            log_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_values_parsed() {
        assert_eq!(parse_tail("all").unwrap().0, None);
        assert_eq!(parse_tail("0").unwrap().0, Some(0));
        assert_eq!(parse_tail("25").unwrap().0, Some(25));
        assert!(parse_tail("-3").unwrap_err().contains("\"-3\""));
        assert!(parse_tail("some").is_err());
    }
}

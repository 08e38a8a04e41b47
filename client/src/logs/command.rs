//! `hullctl logs`: prints a container's output from its json-file log,
//! stdout to stdout and stderr to stderr, as `docker logs` does.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};

use super::reader::{read_logs, ReadOptions};
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
    let id = find_container(paths, &args.container)?;
    let log_path = super::log_path(&paths.container(&id), &id);
    let options = ReadOptions {
        follow: args.follow,
        tail: args.tail.0,
        since: args.since,
        until: args.until,
        timestamps: args.timestamps,
    };
    let stdout = BufWriter::new(std::io::stdout().lock());
    let stderr = BufWriter::new(std::io::stderr().lock());
    let invalid = read_logs(&log_path, &options, stdout, stderr, || {
        container_exited(paths, &id)
    })?;
    if invalid > 0 {
        eprintln!(
            "hullctl: skipped {invalid} lines of {} that are not log records",
            log_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Returns the id of the container whose id or name is `name_or_id`, or
/// whose id alone starts with it, from the `id` and `name` fields of
/// `<root>/containers/*/container.json`.
// TODO: use the container store's lookup once it exists.
fn find_container(paths: &Paths, name_or_id: &str) -> anyhow::Result<String> {
    let directory = paths.containers();
    let entries = match std::fs::read_dir(&directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            bail!("no such container: {name_or_id}")
        }
        Err(error) => {
            return Err(error).with_context(|| format!("failed to list {}", directory.display()))
        }
    };
    let mut prefixed = Vec::new();
    for entry in entries {
        let record_path: PathBuf = entry?.path().join("container.json");
        let Ok(text) = std::fs::read(&record_path) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(id) = record["id"].as_str() else {
            continue;
        };
        if id == name_or_id || record["name"].as_str() == Some(name_or_id) {
            return Ok(id.to_owned());
        }
        if id.starts_with(name_or_id) {
            prefixed.push(id.to_owned());
        }
    }
    match prefixed.len() {
        1 if !name_or_id.is_empty() => Ok(prefixed.remove(0)),
        0 | 1 => bail!("no such container: {name_or_id}"),
        count => bail!(
            "container id prefix {name_or_id} matches {count} containers: give more of the id"
        ),
    }
}

/// Returns whether the container's output has ended, which a follower
/// waits for: `<root>/containers/<id>/exited` exists.
// TODO: ask the container's shim once the container store exists.
fn container_exited(paths: &Paths, id: &str) -> bool {
    paths.container(id).join("exited").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths_with(containers: &[(&str, &str)]) -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        for (id, name) in containers {
            let container = dir.path().join("containers").join(id);
            std::fs::create_dir_all(&container).unwrap();
            let record = serde_json::json!({ "id": id, "name": name });
            std::fs::write(container.join("container.json"), record.to_string()).unwrap();
        }
        let paths = Paths {
            root: dir.path().to_path_buf(),
            run_root: dir.path().join("run"),
        };
        (dir, paths)
    }

    #[test]
    fn container_found_by_id_name_or_prefix() {
        let (_dir, paths) = paths_with(&[("abc123", "web"), ("abd456", "db")]);
        assert_eq!(find_container(&paths, "abc123").unwrap(), "abc123");
        assert_eq!(find_container(&paths, "db").unwrap(), "abd456");
        assert_eq!(find_container(&paths, "abc").unwrap(), "abc123");
        let ambiguous = find_container(&paths, "ab").unwrap_err().to_string();
        assert!(ambiguous.contains("matches 2 containers"), "{ambiguous}");
        let missing = find_container(&paths, "zzz").unwrap_err().to_string();
        assert_eq!(missing, "no such container: zzz");
        assert!(find_container(&paths, "").is_err());
    }

    #[test]
    fn container_lookup_without_store() {
        let (_dir, paths) = paths_with(&[]);
        let missing = find_container(&paths, "web").unwrap_err().to_string();
        assert_eq!(missing, "no such container: web");
    }

    #[test]
    fn tail_values_parsed() {
        assert_eq!(parse_tail("all").unwrap().0, None);
        assert_eq!(parse_tail("0").unwrap().0, Some(0));
        assert_eq!(parse_tail("25").unwrap().0, Some(25));
        assert!(parse_tail("-3").unwrap_err().contains("\"-3\""));
        assert!(parse_tail("some").is_err());
    }
}

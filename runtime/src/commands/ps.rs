//! `hull ps ID [PS_ARGS...]`: the processes of the container, as `ps`
//! prints them (default `-ef`) or as a JSON list of pids.

use std::process::Command;

use super::{Format, Global};
use crate::container::Container;
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format: table or json
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: Format,
    /// Container id
    pub id: String,
    /// Arguments for ps, "-ef" by default
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let container = Container::load(&global.root, &args.id)?;
    // A stopped container keeps its cgroup until `delete`, so the list is
    // empty, or contains processes that outlived an init that shared the
    // host's pid namespace.
    let pids = container.state.cgroup.pids()?;
    if args.format == Format::Json {
        let text = serde_json::to_string(&pids).expect("pids encode");
        println!("{text}");
        return Ok(0);
    }
    let ps_args = if args.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.ps_args.clone()
    };
    let output = Command::new("ps")
        .args(&ps_args)
        .output()
        .map_err(|e| Error::io(format!("run ps {}", ps_args.join(" ")), e))?;
    if !output.status.success() {
        return Err(Error::Message(format!(
            "ps {} failed: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    print!(
        "{}",
        filter(&String::from_utf8_lossy(&output.stdout), &pids)?
    );
    Ok(0)
}

/// Keeps the header and the lines whose PID column is one of `pids`.
fn filter(table: &str, pids: &[i32]) -> Result<String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let column = header
        .split_whitespace()
        .position(|name| name == "PID")
        .ok_or_else(|| Error::Message("ps output has no PID column".into()))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|pid| pids.contains(&pid)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_container_rows() {
        let table = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep 100\n";
        let out = filter(table, &[42]).unwrap();
        assert_eq!(
            out,
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 10:00 ? 00:00:00 sleep 100\n"
        );
    }

    #[test]
    fn missing_pid_column_is_an_error() {
        assert!(filter("USER CMD\n", &[1]).is_err());
    }
}

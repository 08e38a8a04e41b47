//! `stats`: CPU, memory, network, block I/O and process counts of
//! containers, computed from the shim's Stats call as docker computes them.
//!
//! The shim returns containerd's `io.containerd.cgroups.v1.Metrics` when the
//! init process is in v1 controllers, as on hybrid hosts whose v2 mount has
//! no memory or cpu controller, and `.v2.Metrics` otherwise. Both are
//! decoded. Network counters come from `/proc/<pid>/net/dev` of
//! the init process, which shows its network namespace.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use hull_proto::containerd::task::v3::{PidsRequest, StatsRequest};
use serde_json::{json, Value};

mod metrics;

use self::metrics::{decode, host_memory, network_bytes, system_cpu_ns};
use super::record::{ContainerRecord, State};
use super::shim::Shim;
use super::{inspect, Context};

/// docker's default columns.
const TABLE_TEMPLATE: &str = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Time between the two samples that a CPU percentage compares.
const INTERVAL: Duration = Duration::from_secs(1);

/// Options of `stats`.
#[derive(Debug, Clone, Default)]
pub struct StatsOptions {
    pub no_stream: bool,
    pub all: bool,
    pub format: Option<String>,
    pub no_trunc: bool,
}

/// One reading of a container's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// CPU time of the container's cgroup, in nanoseconds.
    pub cpu_ns: u64,
    /// CPU time of the whole host, in nanoseconds, read with `cpu_ns`.
    pub system_ns: u64,
    pub online_cpus: u32,
    /// Memory in use without the inactive file cache, in bytes.
    pub memory_usage: u64,
    /// The memory limit, or the host's memory when there is none.
    pub memory_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

/// `stats`: prints one sample of each container and returns with
/// `no_stream`, or redraws every second until interrupted.
pub async fn stats(
    ctx: &Context,
    names: &[String],
    options: &StatsOptions,
) -> anyhow::Result<ExitCode> {
    // Named containers that do not exist fail before anything is printed.
    for name in names {
        ctx.store.find(name)?;
    }
    let host = HostInfo::read()?;
    let mut previous: HashMap<String, Sample> = HashMap::new();
    let mut first = true;
    loop {
        let records = containers(ctx, names, options.all).await?;
        let mut rows = Vec::new();
        for (record, running) in &records {
            let sample = if *running {
                sample(record, &host).await
            } else {
                None
            };
            let row = match (&sample, previous.get(&record.id)) {
                (Some(current), Some(before)) => row_fields(record, current, before, options),
                (Some(current), None) => row_fields(record, current, current, options),
                _ => row_fields(record, &Sample::default(), &Sample::default(), options),
            };
            match sample {
                Some(sample) => previous.insert(record.id.clone(), sample),
                None => previous.remove(&record.id),
            };
            rows.push(row);
        }
        // The first pass only takes the samples that the CPU percentage
        // of the second is measured against.
        if !first {
            print_frame(&rows, options)?;
            if options.no_stream {
                return Ok(ExitCode::SUCCESS);
            }
        }
        first = false;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

/// Lists the containers to show, with whether each is running: the named ones,
/// or the running ones (all with `all`) at this moment.
async fn containers(
    ctx: &Context,
    names: &[String],
    all: bool,
) -> anyhow::Result<Vec<(ContainerRecord, bool)>> {
    if names.is_empty() {
        let rows = inspect::rows(ctx, all).await?;
        return Ok(rows
            .into_iter()
            .map(|row| {
                let running = matches!(row.state, State::Running | State::Paused);
                (row.record, running)
            })
            .collect());
    }
    let mut records = Vec::new();
    for name in names {
        let record = ctx.store.find(name)?;
        let (state, _) = super::lifecycle::live_state(&record).await;
        records.push((record, matches!(state, State::Running | State::Paused)));
    }
    Ok(records)
}

/// The host's memory, online CPUs and clock tick rate, which samples are
/// measured against.
struct HostInfo {
    memory: u64,
    online_cpus: u32,
    ticks_per_second: u64,
}

impl HostInfo {
    fn read() -> anyhow::Result<HostInfo> {
        let meminfo = std::fs::read_to_string("/proc/meminfo")
            .map_err(|err| anyhow!("failed to read /proc/meminfo: {err}"))?;
        let memory = host_memory(&meminfo)
            .ok_or_else(|| anyhow!("invalid /proc/meminfo: it has no MemTotal line"))?;
        let online_cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
            .ok()
            .flatten()
            .filter(|count| *count > 0)
            .unwrap_or(1) as u32;
        let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|ticks| *ticks > 0)
            .unwrap_or(100) as u64;
        Ok(HostInfo {
            memory,
            online_cpus,
            ticks_per_second,
        })
    }
}

/// Reads a sample of a running container, or None when it has stopped or
/// its shim does not respond.
async fn sample(record: &ContainerRecord, host: &HostInfo) -> Option<Sample> {
    let shim = Shim::try_connect(&record.id, record.shim.as_ref()?).await?;
    let response = shim
        .client()
        .stats(StatsRequest {
            id: record.id.clone(),
        })
        .await;
    let system = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| system_cpu_ns(&text, host.ticks_per_second));
    let metrics = match response {
        Ok(response) => response.into_inner().stats?,
        Err(status) => {
            tracing::debug!(container = %record.id, error = %status.message(), "no statistics");
            return None;
        }
    };
    let usage = match decode(&metrics) {
        Ok(usage) => usage,
        Err(err) => {
            tracing::warn!(container = %record.id, error = %format!("{err:#}"), "invalid statistics");
            return None;
        }
    };
    let pids = match usage.pids {
        Some(pids) => pids,
        None => shim
            .client()
            .pids(PidsRequest {
                id: record.id.clone(),
            })
            .await
            .map(|response| response.into_inner().processes.len() as u64)
            .unwrap_or(0),
    };
    let (net_rx, net_tx) = record
        .pid
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok())
        .map(|text| network_bytes(&text))
        .unwrap_or((0, 0));
    let memory_limit = if usage.memory_limit == 0 || usage.memory_limit > host.memory {
        host.memory
    } else {
        usage.memory_limit
    };
    Some(Sample {
        cpu_ns: usage.cpu_ns,
        system_ns: system.unwrap_or(0),
        online_cpus: host.online_cpus,
        memory_usage: usage.memory_usage,
        memory_limit,
        net_rx,
        net_tx,
        block_read: usage.block_read,
        block_write: usage.block_write,
        pids,
    })
}

/// CPU use between two samples as docker computes it: the container's
/// share of the host's CPU time, times the number of CPUs, in percent.
pub fn cpu_percent(current: &Sample, previous: &Sample) -> f64 {
    let cpu_delta = current.cpu_ns.saturating_sub(previous.cpu_ns) as f64;
    let system_delta = current.system_ns.saturating_sub(previous.system_ns) as f64;
    if cpu_delta <= 0.0 || system_delta <= 0.0 {
        return 0.0;
    }
    cpu_delta / system_delta * f64::from(current.online_cpus) * 100.0
}

/// Builds the row of a container under docker's template field names.
fn row_fields(
    record: &ContainerRecord,
    current: &Sample,
    previous: &Sample,
    options: &StatsOptions,
) -> Value {
    let id = if options.no_trunc {
        record.id.as_str()
    } else {
        record.short_id()
    };
    let memory_percent = if current.memory_limit == 0 {
        0.0
    } else {
        current.memory_usage as f64 / current.memory_limit as f64 * 100.0
    };
    json!({
        "Container": record.name,
        "ID": id,
        "Name": record.name,
        "CPUPerc": format!("{:.2}%", cpu_percent(current, previous)),
        "MemUsage": format!("{} / {}", binary_size(current.memory_usage), binary_size(current.memory_limit)),
        "MemPerc": format!("{memory_percent:.2}%"),
        "NetIO": format!("{} / {}", crate::format::human_size(current.net_rx), crate::format::human_size(current.net_tx)),
        "BlockIO": format!("{} / {}", crate::format::human_size(current.block_read), crate::format::human_size(current.block_write)),
        "PIDs": current.pids.to_string(),
    })
}

fn header_fields() -> Value {
    json!({
        "Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

/// Prints one frame; when stdout is a terminal and the output streams,
/// clears the screen first so that the frame replaces the last one.
fn print_frame(rows: &[Value], options: &StatsOptions) -> anyhow::Result<()> {
    let text = render_frame(rows, options.format.as_deref())?;
    let mut stdout = std::io::stdout().lock();
    if !options.no_stream && stdout.is_terminal() {
        stdout.write_all(b"\x1b[2J\x1b[H")?;
    }
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Formats rows as a table, one JSON object a line (`json`), or a Go-style
/// template, with a header line when the template starts with `table`.
pub fn render_frame(rows: &[Value], format: Option<&str>) -> anyhow::Result<String> {
    let mut text = String::new();
    match format {
        Some("json") => {
            for row in rows {
                text.push_str(&serde_json::to_string(row)?);
                text.push('\n');
            }
        }
        Some(template) if template != "table" => {
            let (header, template) = match template.strip_prefix("table") {
                Some(rest) => (true, rest.trim_start()),
                None => (false, template),
            };
            let mut lines = Vec::new();
            if header {
                lines.push(inspect::render(template, &header_fields()));
            }
            for row in rows {
                lines.push(inspect::render(template, row));
            }
            text.push_str(&align_tabs(&lines));
        }
        _ => {
            let mut lines = vec![inspect::render(TABLE_TEMPLATE, &header_fields())];
            for row in rows {
                lines.push(inspect::render(TABLE_TEMPLATE, row));
            }
            text.push_str(&align_tabs(&lines));
        }
    }
    Ok(text)
}

/// Aligns tab-separated cells into columns as docker's tables do: each
/// cell but the last of a line is padded to the widest cell of its column
/// plus 3 spaces, and to at least 10.
pub fn align_tabs(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .map(|line| line.split('\t').collect())
        .collect();
    let mut widths: Vec<usize> = Vec::new();
    for row in &rows {
        for (index, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            if widths.len() <= index {
                widths.push(0);
            }
            widths[index] = widths[index].max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        for (index, cell) in row.iter().enumerate() {
            if index + 1 == row.len() {
                text.push_str(cell);
            } else {
                let width = (widths[index] + 3).max(10);
                text.push_str(&format!("{cell:<width$}"));
            }
        }
        text.push('\n');
    }
    text
}

/// Formats `bytes` in binary units with up to four significant digits, as
/// docker shows memory: `1.5MiB`, `64MiB`, `1023KiB`.
pub fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let integer_digits = if value < 1.0 {
        1
    } else {
        value.log10().floor() as usize + 1
    };
    let decimals = 4usize.saturating_sub(integer_digits);
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sizes() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1000), "1000B");
        assert_eq!(binary_size(64 << 20), "64MiB");
        assert_eq!(binary_size(1536 << 10), "1.5MiB");
        assert_eq!(binary_size(1_234_567), "1.177MiB");
        assert_eq!(binary_size(24 << 30), "24GiB");
        assert_eq!(binary_size(123_456_789), "117.7MiB");
    }

    #[test]
    fn cpu_percent_scales_by_cpus() {
        let previous = Sample {
            cpu_ns: 1_000,
            system_ns: 10_000,
            online_cpus: 2,
            ..Default::default()
        };
        let current = Sample {
            cpu_ns: 2_000,
            system_ns: 20_000,
            online_cpus: 2,
            ..Default::default()
        };
        assert!((cpu_percent(&current, &previous) - 20.0).abs() < 1e-9);
        assert_eq!(cpu_percent(&previous, &previous), 0.0);
    }

    fn row() -> Value {
        json!({
            "Container": "web", "ID": "0123456789ab", "Name": "web", "CPUPerc": "0.50%",
            "MemUsage": "1.5MiB / 64MiB", "MemPerc": "2.34%", "NetIO": "0B / 0B",
            "BlockIO": "0B / 0B", "PIDs": "1",
        })
    }

    #[test]
    fn default_table_has_docker_columns() {
        let text = render_frame(&[row()], None).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS");
        assert_eq!(lines[1], "0123456789ab   web       0.50%     1.5MiB / 64MiB      2.34%     0B / 0B   0B / 0B     1");
    }

    #[test]
    fn json_and_template_formats() {
        let json = render_frame(&[row()], Some("json")).unwrap();
        let value: Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(value["MemUsage"], "1.5MiB / 64MiB");
        assert_eq!(value["PIDs"], "1");
        let template = render_frame(&[row()], Some("{{.Name}}: {{.MemPerc}}")).unwrap();
        assert_eq!(template, "web: 2.34%\n");
        let table = render_frame(&[row()], Some("table {{.Name}}\t{{.PIDs}}")).unwrap();
        assert_eq!(table, "NAME      PIDS\nweb       1\n");
    }
}

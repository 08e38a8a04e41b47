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

use anyhow::{anyhow, bail};
use hull_proto::containerd::task::v3::{PidsRequest, StatsRequest};
use hull_proto::io::containerd::cgroups::{v1, v2};
use serde_json::{json, Value};

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

/// A container's counters as the cgroup metrics state them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupUsage {
    pub cpu_ns: u64,
    pub memory_usage: u64,
    /// 0 when the cgroup reports no limit.
    pub memory_limit: u64,
    pub block_read: u64,
    pub block_write: u64,
    /// None when the pids controller is not in use.
    pub pids: Option<u64>,
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

/// Decodes the `stats` of a Stats response, cgroup v1 or v2.
pub fn decode(any: &prost_types::Any) -> anyhow::Result<CgroupUsage> {
    if let Some(metrics) = hull_proto::events::from_any::<v1::Metrics>(any) {
        let metrics = metrics.map_err(|err| anyhow!("invalid cgroup v1 metrics: {err}"))?;
        return Ok(usage_v1(&metrics));
    }
    if let Some(metrics) = hull_proto::events::from_any::<v2::Metrics>(any) {
        let metrics = metrics.map_err(|err| anyhow!("invalid cgroup v2 metrics: {err}"))?;
        return Ok(usage_v2(&metrics));
    }
    bail!(
        "unsupported statistics type {:?}: expected cgroup v1 or v2 metrics",
        any.type_url
    )
}

/// Extracts the usage from v1 metrics. Memory usage leaves out the inactive file
/// cache, which the kernel reclaims first, as docker does.
pub fn usage_v1(metrics: &v1::Metrics) -> CgroupUsage {
    let mut usage = CgroupUsage::default();
    if let Some(cpu) = metrics.cpu.as_ref().and_then(|cpu| cpu.usage.as_ref()) {
        usage.cpu_ns = cpu.total;
    }
    if let Some(memory) = &metrics.memory {
        let entry = memory.usage.unwrap_or_default();
        usage.memory_usage = without_cache(entry.usage, memory.total_inactive_file);
        usage.memory_limit = entry.limit;
    }
    if let Some(blkio) = &metrics.blkio {
        for entry in &blkio.io_service_bytes_recursive {
            match entry.op.to_ascii_lowercase().as_str() {
                "read" => usage.block_read += entry.value,
                "write" => usage.block_write += entry.value,
                _ => {}
            }
        }
    }
    usage.pids = metrics.pids.as_ref().map(|pids| pids.current);
    usage
}

/// Extracts the usage from v2 metrics, leaving the inactive file cache out
/// of the memory usage.
pub fn usage_v2(metrics: &v2::Metrics) -> CgroupUsage {
    let mut usage = CgroupUsage::default();
    if let Some(cpu) = &metrics.cpu {
        usage.cpu_ns = cpu.usage_usec.saturating_mul(1000);
    }
    if let Some(memory) = &metrics.memory {
        usage.memory_usage = without_cache(memory.usage, memory.inactive_file);
        usage.memory_limit = memory.usage_limit;
    }
    if let Some(io) = &metrics.io {
        for entry in &io.usage {
            usage.block_read += entry.rbytes;
            usage.block_write += entry.wbytes;
        }
    }
    usage.pids = metrics.pids.as_ref().map(|pids| pids.current);
    usage
}

fn without_cache(usage: u64, inactive_file: u64) -> u64 {
    if inactive_file < usage {
        usage - inactive_file
    } else {
        usage
    }
}

/// Returns the host's CPU time in nanoseconds from the text of
/// `/proc/stat`: the sum of the first seven fields of the `cpu` line (user
/// to softirq), the sum docker compares container CPU time with.
pub fn system_cpu_ns(proc_stat: &str, ticks_per_second: u64) -> Option<u64> {
    let line = proc_stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some("cpu"))?;
    let mut ticks = 0u64;
    for field in line.split_whitespace().skip(1).take(7) {
        ticks += field.parse::<u64>().ok()?;
    }
    Some(ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1))
}

/// Returns the received and sent bytes of every interface but `lo`, from
/// the text of `/proc/<pid>/net/dev`.
pub fn network_bytes(net_dev: &str) -> (u64, u64) {
    let mut received = 0;
    let mut sent = 0;
    for line in net_dev.lines() {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let counters: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|value| value.parse().ok())
            .collect();
        // 8 receive counters come before the 8 transmit counters.
        if counters.len() >= 16 {
            received += counters[0];
            sent += counters[8];
        }
    }
    (received, sent)
}

/// Returns the host's memory in bytes from the text of `/proc/meminfo`.
pub fn host_memory(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
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
    fn system_cpu_sums_seven_fields() {
        let text = "cpu  100 0 50 800 20 5 5 7 0 0\ncpu0 50 0 25 400 10 2 3 0 0 0\nbtime 1\n";
        assert_eq!(system_cpu_ns(text, 100), Some(980 * 10_000_000));
        assert_eq!(system_cpu_ns("intr 1\n", 100), None);
    }

    #[test]
    fn network_skips_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0\n  eth0:    1200      10    0    0    0     0          0         0      3400      20    0    0    0     0       0          0\n  eth1:      10       1    0    0    0     0          0         0        20       1    0    0    0     0       0          0\n";
        assert_eq!(network_bytes(text), (1210, 3420));
    }

    #[test]
    fn meminfo_total() {
        let text = "MemTotal:       24576000 kB\nMemFree:  1 kB\n";
        assert_eq!(host_memory(text), Some(24_576_000 * 1024));
        assert_eq!(host_memory("MemFree: 1 kB\n"), None);
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

    #[test]
    fn v1_usage_without_cache() {
        let metrics = v1::Metrics {
            cpu: Some(v1::CpuStat {
                usage: Some(v1::CpuUsage {
                    total: 42,
                    ..Default::default()
                }),
                throttling: None,
            }),
            memory: Some(v1::MemoryStat {
                total_inactive_file: 100,
                usage: Some(v1::MemoryEntry {
                    usage: 1000,
                    limit: 64 << 20,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            blkio: Some(v1::BlkIoStat {
                io_service_bytes_recursive: vec![
                    blkio_entry("Read", 10),
                    blkio_entry("Write", 20),
                    blkio_entry("Total", 30),
                    blkio_entry("Read", 5),
                ],
                ..Default::default()
            }),
            pids: Some(v1::PidsStat {
                current: 3,
                limit: 0,
            }),
            ..Default::default()
        };
        let any = hull_proto::events::to_any(&metrics);
        let usage = decode(&any).expect("decodes");
        assert_eq!(usage.cpu_ns, 42);
        assert_eq!(usage.memory_usage, 900);
        assert_eq!(usage.memory_limit, 64 << 20);
        assert_eq!(usage.block_read, 15);
        assert_eq!(usage.block_write, 20);
        assert_eq!(usage.pids, Some(3));
    }

    fn blkio_entry(op: &str, value: u64) -> v1::BlkIoEntry {
        v1::BlkIoEntry {
            op: op.to_owned(),
            value,
            ..Default::default()
        }
    }

    #[test]
    fn v2_usage_without_cache() {
        let metrics = v2::Metrics {
            cpu: Some(v2::CpuStat {
                usage_usec: 7,
                ..Default::default()
            }),
            memory: Some(v2::MemoryStat {
                usage: 50,
                inactive_file: 80,
                usage_limit: 0,
                ..Default::default()
            }),
            io: Some(v2::IoStat {
                usage: vec![v2::IoEntry {
                    rbytes: 4,
                    wbytes: 6,
                    ..Default::default()
                }],
                psi: None,
            }),
            ..Default::default()
        };
        let mut any = hull_proto::events::to_any(&metrics);
        any.type_url = format!("types.example/{}", any.type_url);
        let usage = decode(&any).expect("decodes");
        assert_eq!(usage.cpu_ns, 7000);
        assert_eq!(usage.memory_usage, 50, "cache larger than usage is ignored");
        assert_eq!(usage.memory_limit, 0);
        assert_eq!((usage.block_read, usage.block_write), (4, 6));
        assert_eq!(usage.pids, None);
    }

    #[test]
    fn unknown_statistics_type_fails() {
        let any = prost_types::Any {
            type_url: String::from("example.Other"),
            value: Vec::new(),
        };
        let err = decode(&any).unwrap_err().to_string();
        assert!(err.contains("example.Other"), "{err}");
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

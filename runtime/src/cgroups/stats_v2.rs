//! Statistics from a cgroup2 directory, mapped to the v1 shape as runc 1.1's
//! `libcontainer/cgroups/fs2` maps them. v2 has no cpuset statistics, no
//! per-CPU times and no kernel memory counters, so those stay zero.

use std::collections::BTreeMap;
use std::path::Path;

use super::files::read_file;
use super::stats::{
    huge_page_sizes, parse_key_values, read_counter, read_optional_counter, Blkio, BlkioEntry,
    Hugetlb, MemoryEntry, Stats,
};
use super::CgroupError;

/// Reads the statistics of the cgroup2 directory `dir` into `stats`.
pub fn read(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    read_pids(dir, stats)?;
    if let Some(text) = read_optional(dir, "memory.stat")? {
        let raw = parse_key_values(&dir.join("memory.stat"), &text)?;
        read_memory(dir, raw, stats)?;
    }
    if let Some(text) = read_optional(dir, "io.stat")? {
        stats.blkio = parse_io_stat(&dir.join("io.stat"), &text)?;
    }
    // `cpu.stat` exists even when the cpu controller is not enabled.
    if let Some(text) = read_optional(dir, "cpu.stat")? {
        apply_cpu_stat(&parse_key_values(&dir.join("cpu.stat"), &text)?, stats);
    }
    for size in huge_page_sizes() {
        // Kernels with hugetlb reservation accounting have `.rsvd` files,
        // which runc 1.1 reads when present.
        let mut prefix = format!("hugetlb.{size}.rsvd");
        if !dir.join(format!("{prefix}.current")).exists() {
            prefix = format!("hugetlb.{size}");
        }
        let Some(usage) = read_optional_counter(dir, &format!("{prefix}.current"))? else {
            continue;
        };
        let events_file = format!("{prefix}.events");
        let events = parse_key_values(&dir.join(&events_file), &read_file(dir, &events_file)?)?;
        let entry = Hugetlb {
            usage,
            max: 0,
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        stats.hugetlb.insert(size, entry);
    }
    Ok(())
}

fn read_optional(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    match read_file(dir, file) {
        Ok(text) => Ok(Some(text)),
        Err(CgroupError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

fn read_pids(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    match read_optional_counter(dir, "pids.current")? {
        Some(current) => {
            stats.pids.current = current;
            let limit = read_counter(dir, "pids.max")?;
            stats.pids.limit = if limit == u64::MAX { 0 } else { limit };
        }
        None => {
            // Without the pids controller, count the members.
            let procs = read_file(dir, "cgroup.procs")?;
            stats.pids.current = procs.lines().count() as u64;
        }
    }
    Ok(())
}

fn read_memory(
    dir: &Path,
    raw: BTreeMap<String, u64>,
    stats: &mut Stats,
) -> Result<(), CgroupError> {
    let memory = &mut stats.memory;
    memory.cache = raw.get("file").copied().unwrap_or(0);
    memory.raw = raw;
    memory.usage = MemoryEntry {
        usage: read_counter(dir, "memory.current")?,
        limit: read_counter(dir, "memory.max")?,
        // `memory.peak` exists since Linux 5.19.
        max: read_optional_counter(dir, "memory.peak")?.unwrap_or(0),
        failcnt: 0,
    };
    // v2 counts swap alone, but the v1 shape expects memory plus swap.
    if let Some(swap) = read_optional_counter(dir, "memory.swap.current")? {
        let swap_limit = read_counter(dir, "memory.swap.max")?;
        memory.swap = combine_swap(&memory.usage, swap, swap_limit);
    } else {
        memory.swap = combine_swap(&memory.usage, 0, 0);
    }
    Ok(())
}

/// Builds the v1-style memory+swap entry from v2's memory and swap-only
/// counters. An unlimited swap stays unlimited. The peak is unknown (0).
pub fn combine_swap(memory: &MemoryEntry, swap_usage: u64, swap_limit: u64) -> MemoryEntry {
    let limit = if swap_limit == u64::MAX {
        u64::MAX
    } else {
        swap_limit.saturating_add(memory.limit)
    };
    MemoryEntry {
        limit,
        usage: swap_usage + memory.usage,
        max: 0,
        failcnt: 0,
    }
}

/// Maps `cpu.stat` (microseconds) to the CPU statistics (nanoseconds).
pub fn apply_cpu_stat(values: &BTreeMap<String, u64>, stats: &mut Stats) {
    let get = |key: &str| values.get(key).copied().unwrap_or(0);
    let usage = &mut stats.cpu.usage;
    usage.total = get("usage_usec") * 1000;
    usage.user = get("user_usec") * 1000;
    usage.kernel = get("system_usec") * 1000;
    let throttling = &mut stats.cpu.throttling;
    throttling.periods = get("nr_periods");
    throttling.throttled_periods = get("nr_throttled");
    throttling.throttled_time = get("throttled_usec") * 1000;
}

/// Parses `io.stat`: one line per device, `MAJOR:MINOR KEY=VALUE...`.
/// Bytes and operations go to the v1 tables as `Read` and `Write`
/// entries. Other keys (discards) have no v1 table and are skipped.
pub fn parse_io_stat(path: &Path, text: &str) -> Result<Blkio, CgroupError> {
    let malformed = |line: &str| CgroupError::Parse {
        path: path.to_path_buf(),
        text: line.to_string(),
    };
    let mut blkio = Blkio::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let device = fields.next().unwrap_or_default();
        let Some((major, minor)) = device.split_once(':') else {
            continue;
        };
        let major: u64 = major.parse().map_err(|_| malformed(line))?;
        let minor: u64 = minor.parse().map_err(|_| malformed(line))?;
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let (table, op) = match key {
                "rbytes" => (&mut blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            let value: u64 = value.parse().map_err(|_| malformed(line))?;
            table.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    Ok(blkio)
}

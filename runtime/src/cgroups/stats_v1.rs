//! Statistics from the cgroup v1 controllers, from the files runc 1.1's
//! `libcontainer/cgroups/fs` reads.

use std::path::Path;

use super::files::read_file;
use super::stats::{
    huge_page_sizes, parse_counter, parse_key_values, read_counter, read_optional_counter,
    BlkioEntry, CpuSet, Hugetlb, MemoryEntry, Stats,
};
use super::CgroupError;

/// Reads every mounted controller's statistics into `stats`. `dir` returns
/// the container's directory of a controller, or `None` when the
/// controller is not mounted or the directory is gone.
pub fn read<'a>(
    dir: &dyn Fn(&str) -> Option<&'a Path>,
    stats: &mut Stats,
) -> Result<(), CgroupError> {
    if let Some(dir) = dir("cpu") {
        read_throttling(dir, stats)?;
    }
    if let Some(dir) = dir("cpuacct") {
        read_cpuacct(dir, stats)?;
    }
    if let Some(dir) = dir("cpuset") {
        stats.cpuset = read_cpuset(dir)?;
    }
    if let Some(dir) = dir("memory") {
        read_memory(dir, stats)?;
    }
    if let Some(dir) = dir("pids") {
        stats.pids.current = read_counter(dir, "pids.current")?;
        let limit = read_counter(dir, "pids.max")?;
        stats.pids.limit = if limit == u64::MAX { 0 } else { limit };
    }
    if let Some(dir) = dir("blkio") {
        read_blkio(dir, stats)?;
    }
    if let Some(dir) = dir("hugetlb") {
        for size in huge_page_sizes() {
            let file = |suffix: &str| format!("hugetlb.{size}.{suffix}");
            let entry = Hugetlb {
                usage: read_counter(dir, &file("usage_in_bytes"))?,
                max: read_counter(dir, &file("max_usage_in_bytes"))?,
                failcnt: read_counter(dir, &file("failcnt"))?,
            };
            stats.hugetlb.insert(size, entry);
        }
    }
    Ok(())
}

fn read_throttling(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    let values = parse_key_values(&dir.join("cpu.stat"), &read_file(dir, "cpu.stat")?)?;
    let get = |key: &str| values.get(key).copied().unwrap_or(0);
    stats.cpu.throttling.periods = get("nr_periods");
    stats.cpu.throttling.throttled_periods = get("nr_throttled");
    stats.cpu.throttling.throttled_time = get("throttled_time");
    Ok(())
}

fn read_cpuacct(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    let usage = &mut stats.cpu.usage;
    // `cpuacct.stat` counts clock ticks (USER_HZ).
    let ticks = parse_key_values(&dir.join("cpuacct.stat"), &read_file(dir, "cpuacct.stat")?)?;
    let ns_per_tick = 1_000_000_000 / clock_ticks_per_second();
    usage.user = ticks.get("user").copied().unwrap_or(0) * ns_per_tick;
    usage.kernel = ticks.get("system").copied().unwrap_or(0) * ns_per_tick;
    usage.total = read_counter(dir, "cpuacct.usage")?;
    let path = dir.join("cpuacct.usage_percpu");
    usage.percpu = read_file(dir, "cpuacct.usage_percpu")?
        .split_whitespace()
        .map(|v| parse_counter(&path, v))
        .collect::<Result<_, _>>()?;
    match read_file(dir, "cpuacct.usage_all") {
        Ok(text) => {
            let (user, kernel) = parse_usage_all(&dir.join("cpuacct.usage_all"), &text)?;
            usage.percpu_user = user;
            usage.percpu_kernel = kernel;
        }
        Err(CgroupError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    Ok(())
}

fn clock_ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as u64,
        _ => 100,
    }
}

/// Parses `cpuacct.usage_all`: a `cpu user system` header, then one line
/// per CPU. Returns the per-CPU user and system times in nanoseconds.
pub fn parse_usage_all(path: &Path, text: &str) -> Result<(Vec<u64>, Vec<u64>), CgroupError> {
    let mut user = Vec::new();
    let mut kernel = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 3 {
            continue;
        }
        user.push(parse_counter(path, fields[1])?);
        kernel.push(parse_counter(path, fields[2])?);
    }
    Ok((user, kernel))
}

fn read_cpuset(dir: &Path) -> Result<CpuSet, CgroupError> {
    let list = |file: &str| -> Result<Vec<u16>, CgroupError> {
        let text = read_file(dir, file)?;
        parse_cpu_list(&text).ok_or_else(|| CgroupError::Parse {
            path: dir.join(file),
            text,
        })
    };
    let counter = |file: &str| read_counter(dir, &format!("cpuset.{file}"));
    let relax_path = dir.join("cpuset.sched_relax_domain_level");
    let relax_text = read_file(dir, "cpuset.sched_relax_domain_level")?;
    let sched_relax_domain_level = relax_text.parse().map_err(|_| CgroupError::Parse {
        path: relax_path,
        text: relax_text,
    })?;
    Ok(CpuSet {
        cpus: list("cpuset.cpus")?,
        cpu_exclusive: counter("cpu_exclusive")?,
        mems: list("cpuset.mems")?,
        mem_hardwall: counter("mem_hardwall")?,
        mem_exclusive: counter("mem_exclusive")?,
        memory_migrate: counter("memory_migrate")?,
        memory_spread_page: counter("memory_spread_page")?,
        memory_spread_slab: counter("memory_spread_slab")?,
        memory_pressure: counter("memory_pressure")?,
        sched_load_balance: counter("sched_load_balance")?,
        sched_relax_domain_level,
    })
}

/// Parses a CPU or memory node list such as `0-3,7` into its members.
/// Returns `None` on malformed text.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u16>> {
    let mut members = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last): (u16, u16) = (first.parse().ok()?, last.parse().ok()?);
                if first > last {
                    return None;
                }
                members.extend(first..=last);
            }
            None => members.push(part.parse().ok()?),
        }
    }
    Some(members)
}

fn read_memory(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    let memory = &mut stats.memory;
    memory.raw = parse_key_values(&dir.join("memory.stat"), &read_file(dir, "memory.stat")?)?;
    memory.cache = memory.raw.get("cache").copied().unwrap_or(0);
    memory.usage = read_memory_entry(dir, "memory")?.unwrap_or_default();
    memory.swap = read_memory_entry(dir, "memory.memsw")?.unwrap_or_default();
    memory.kernel = read_memory_entry(dir, "memory.kmem")?.unwrap_or_default();
    memory.kernel_tcp = read_memory_entry(dir, "memory.kmem.tcp")?.unwrap_or_default();
    Ok(())
}

/// Reads `PREFIX.usage_in_bytes` and its siblings. Returns `None` when the
/// kernel has no such counter (swap or kernel memory accounting is off).
fn read_memory_entry(dir: &Path, prefix: &str) -> Result<Option<MemoryEntry>, CgroupError> {
    let Some(usage) = read_optional_counter(dir, &format!("{prefix}.usage_in_bytes"))? else {
        return Ok(None);
    };
    Ok(Some(MemoryEntry {
        usage,
        max: read_counter(dir, &format!("{prefix}.max_usage_in_bytes"))?,
        failcnt: read_counter(dir, &format!("{prefix}.failcnt"))?,
        // Some kernels have no `memory.kmem.limit_in_bytes`, as runc 1.1 notes.
        limit: read_optional_counter(dir, &format!("{prefix}.limit_in_bytes"))?.unwrap_or(0),
    }))
}

/// Blkio statistics files, in the order runc 1.1 tries them: the first
/// group whose first file exists and has lines is used. Each entry is the
/// file and the field of [`super::stats::Blkio`] it fills.
const BLKIO_GROUPS: &[&[(&str, BlkioField)]] = &[
    &[
        ("blkio.bfq.sectors_recursive", BlkioField::Sectors),
        (
            "blkio.bfq.io_service_time_recursive",
            BlkioField::ServiceTime,
        ),
        ("blkio.bfq.io_wait_time_recursive", BlkioField::WaitTime),
        ("blkio.bfq.io_merged_recursive", BlkioField::Merged),
        ("blkio.bfq.io_queued_recursive", BlkioField::Queued),
        ("blkio.bfq.time_recursive", BlkioField::Time),
        ("blkio.bfq.io_serviced_recursive", BlkioField::Serviced),
        (
            "blkio.bfq.io_service_bytes_recursive",
            BlkioField::ServiceBytes,
        ),
    ],
    &[
        ("blkio.bfq.io_serviced_recursive", BlkioField::Serviced),
        (
            "blkio.bfq.io_service_bytes_recursive",
            BlkioField::ServiceBytes,
        ),
    ],
    &[
        ("blkio.sectors_recursive", BlkioField::Sectors),
        ("blkio.io_service_time_recursive", BlkioField::ServiceTime),
        ("blkio.io_wait_time_recursive", BlkioField::WaitTime),
        ("blkio.io_merged_recursive", BlkioField::Merged),
        ("blkio.io_queued_recursive", BlkioField::Queued),
        ("blkio.time_recursive", BlkioField::Time),
        ("blkio.io_serviced_recursive", BlkioField::Serviced),
        ("blkio.io_service_bytes_recursive", BlkioField::ServiceBytes),
    ],
    &[
        ("blkio.throttle.io_serviced_recursive", BlkioField::Serviced),
        (
            "blkio.throttle.io_service_bytes_recursive",
            BlkioField::ServiceBytes,
        ),
    ],
    &[
        ("blkio.throttle.io_serviced", BlkioField::Serviced),
        ("blkio.throttle.io_service_bytes", BlkioField::ServiceBytes),
    ],
];

#[derive(Debug, Clone, Copy)]
enum BlkioField {
    ServiceBytes,
    Serviced,
    Queued,
    ServiceTime,
    WaitTime,
    Merged,
    Time,
    Sectors,
}

fn read_blkio(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError> {
    for group in BLKIO_GROUPS {
        for (index, (file, field)) in group.iter().enumerate() {
            let entries = match read_file(dir, file) {
                Ok(text) => parse_blkio(&dir.join(file), &text)?,
                Err(CgroupError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    Vec::new()
                }
                Err(err) => return Err(err),
            };
            if entries.is_empty() {
                if index == 0 {
                    break;
                }
                // runc 1.1 stops here, keeping what it has read.
                return Ok(());
            }
            let blkio = &mut stats.blkio;
            let target = match field {
                BlkioField::ServiceBytes => &mut blkio.io_service_bytes_recursive,
                BlkioField::Serviced => &mut blkio.io_serviced_recursive,
                BlkioField::Queued => &mut blkio.io_queued_recursive,
                BlkioField::ServiceTime => &mut blkio.io_service_time_recursive,
                BlkioField::WaitTime => &mut blkio.io_wait_time_recursive,
                BlkioField::Merged => &mut blkio.io_merged_recursive,
                BlkioField::Time => &mut blkio.io_time_recursive,
                BlkioField::Sectors => &mut blkio.sectors_recursive,
            };
            *target = entries;
            if index == group.len() - 1 {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Parses a blkio statistics file: `MAJOR:MINOR OP VALUE` or
/// `MAJOR:MINOR VALUE` lines, and a `Total VALUE` line that is skipped.
pub fn parse_blkio(path: &Path, text: &str) -> Result<Vec<BlkioEntry>, CgroupError> {
    let malformed = |line: &str| CgroupError::Parse {
        path: path.to_path_buf(),
        text: line.to_string(),
    };
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line
            .split(|c: char| c == ':' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        let (op, value) = match fields.len() {
            2 if fields[0] == "Total" => continue,
            3 => ("", fields[2]),
            4 => (fields[2], fields[3]),
            _ => return Err(malformed(line)),
        };
        let number = |text: &str| text.parse::<u64>().map_err(|_| malformed(line));
        entries.push(BlkioEntry {
            major: number(fields[0])?,
            minor: number(fields[1])?,
            op: op.to_string(),
            value: number(value)?,
        });
    }
    Ok(entries)
}

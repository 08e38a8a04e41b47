//! Resource usage of a container's cgroup, in the JSON shape of runc 1.1's
//! `types.Stats` (`runc events`).
//!
//! Field names and the omission of zero values follow runc's Go struct tags:
//! a field tagged `omitempty` is left out when it is zero or empty, and a
//! nested struct is always printed.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::files::read_file;
use super::{stats_v1, stats_v2, CgroupError, CgroupMode, Manager};

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The statistics of one cgroup (`data` of a `stats` event).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// Per huge page size, such as `2MB`.
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Always empty: hull does not support Intel RDT.
    pub intel_rdt: IntelRdt,
    /// Always `null`, as runc 1.1 prints it for OCI containers. runc reads
    /// interface counters only for veth interfaces that it configures
    /// itself, and an OCI configuration cannot request those.
    pub network_interfaces: Option<Vec<()>>,
}

/// CPU time in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

/// CFS bandwidth throttling. `throttledTime` is in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// The cpuset controller's settings (cgroup v1 only, as in runc 1.1).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CpuSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    pub cpu_exclusive: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    pub mem_hardwall: u64,
    pub mem_exclusive: u64,
    pub memory_migrate: u64,
    pub memory_spread_page: u64,
    pub memory_spread_slab: u64,
    pub memory_pressure: u64,
    pub sched_load_balance: u64,
    pub sched_relax_domain_level: i64,
}

/// Usage, peak usage, limit and failure count of one memory counter, in
/// bytes. An unlimited counter has the kernel's "no limit" value.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Memory {
    /// Page cache: `cache` of v1 `memory.stat`, `file` on v2.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    /// Memory plus swap, also on v2 where the kernel counts swap alone.
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// Every line of `memory.stat`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// 0 when there is no limit.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One line of a blkio statistics file: `MAJOR:MINOR [OP] VALUE`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// runc 1.1 spells this key `ioQueueRecursive`.
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Intel RDT statistics, which hull never collects: always `{}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IntelRdt {}

impl Manager {
    /// Reads the resource usage of the cgroup. On v1 and hybrid hosts the
    /// values come from the v1 controllers, and a controller that is not
    /// mounted leaves its part at zero. On v2 they come from the cgroup2
    /// files, and files of controllers that are not enabled are skipped.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let mut stats = Stats::default();
        if self.mode == CgroupMode::Unified {
            stats_v2::read(self.unified_dir()?, &mut stats)?;
        } else {
            let dir = |name: &str| {
                self.v1
                    .get(name)
                    .map(|d| d.dir.as_path())
                    .filter(|d| d.is_dir())
            };
            stats_v1::read(&dir, &mut stats)?;
        }
        Ok(stats)
    }
}

/// Parses a cgroup counter. "max" is the largest value, and a negative
/// number (some v1 files print -1) is 0.
pub fn parse_counter(path: &Path, text: &str) -> Result<u64, CgroupError> {
    let text = text.trim();
    if text == "max" {
        return Ok(u64::MAX);
    }
    if let Ok(value) = text.parse::<u64>() {
        return Ok(value);
    }
    match text.parse::<i64>() {
        Ok(value) if value < 0 => Ok(0),
        _ => Err(CgroupError::Parse {
            path: path.to_path_buf(),
            text: text.to_string(),
        }),
    }
}

/// Reads the counter file `dir/file`.
pub fn read_counter(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    parse_counter(&dir.join(file), &read_file(dir, file)?)
}

/// Reads the counter file `dir/file`, or `None` when the kernel lacks it.
pub fn read_optional_counter(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    match read_file(dir, file) {
        Ok(text) => parse_counter(&dir.join(file), &text).map(Some),
        Err(CgroupError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Parses a flat keyed file such as `memory.stat` or `cpu.stat`: one
/// `KEY VALUE` pair per line.
pub fn parse_key_values(path: &Path, text: &str) -> Result<BTreeMap<String, u64>, CgroupError> {
    let mut values = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(CgroupError::Parse {
                path: path.to_path_buf(),
                text: line.to_string(),
            });
        };
        values.insert(key.to_string(), parse_counter(path, value)?);
    }
    Ok(values)
}

/// Lists the huge page sizes the kernel supports, in the names of the hugetlb
/// files (`2MB`, `1GB`), from the directories of `/sys/kernel/mm/hugepages`.
pub fn huge_page_sizes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut sizes: Vec<(u64, String)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let kib: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some((kib, page_size_name(kib)))
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, name)| name).collect()
}

/// Names a huge page size given in KiB as the kernel's hugetlb files do:
/// the largest binary unit that divides it, `KB`, `MB` or `GB`.
pub fn page_size_name(kib: u64) -> String {
    if kib >= 1 << 20 && kib % (1 << 20) == 0 {
        format!("{}GB", kib >> 20)
    } else if kib >= 1 << 10 && kib % (1 << 10) == 0 {
        format!("{}MB", kib >> 10)
    } else {
        format!("{kib}KB")
    }
}

//! The counters of the cgroup metrics that the shim's Stats call returns,
//! and the host's counters they are compared with.

use anyhow::{anyhow, bail};
use hull_proto::io::containerd::cgroups::{v1, v2};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}

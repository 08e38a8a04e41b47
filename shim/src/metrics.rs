//! Container statistics from the cgroup files of the init process, in
//! containerd's `io.containerd.cgroups.v1.Metrics` or `.v2.Metrics`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hull_proto::io::containerd::cgroups::{v1, v2};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Metrics of one of the two cgroup versions.
pub enum Metrics {
    V1(v1::Metrics),
    V2(v2::Metrics),
}

impl Metrics {
    pub fn to_any(&self) -> prost_types::Any {
        match self {
            Metrics::V1(metrics) => hull_proto::events::to_any(metrics),
            Metrics::V2(metrics) => hull_proto::events::to_any(metrics),
        }
    }
}

/// Reads the metrics of the cgroups of process `pid`.
pub fn collect(pid: i32) -> std::io::Result<Metrics> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let mut v1_paths: HashMap<String, PathBuf> = HashMap::new();
    let mut v2_path = None;
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if controllers.is_empty() {
            v2_path = Some(relative.to_owned());
            continue;
        }
        for controller in controllers.split(',') {
            let directory = controller.trim_start_matches("name=");
            v1_paths.insert(
                controller.to_owned(),
                Path::new(CGROUP_ROOT).join(directory).join(relative),
            );
        }
    }
    if v1_paths.contains_key("memory") || v1_paths.contains_key("cpuacct") {
        return Ok(Metrics::V1(collect_v1(&v1_paths)));
    }
    let path = Path::new(CGROUP_ROOT).join(v2_path.unwrap_or_default());
    Ok(Metrics::V2(collect_v2(&path)))
}

fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads a flat keyed file such as `memory.stat` or `cpu.stat`.
fn read_keyed(path: &Path) -> HashMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn collect_v1(paths: &HashMap<String, PathBuf>) -> v1::Metrics {
    let mut metrics = v1::Metrics::default();
    if let Some(pids) = paths.get("pids") {
        let limit = std::fs::read_to_string(pids.join("pids.max")).unwrap_or_default();
        metrics.pids = Some(v1::PidsStat {
            current: read_u64(&pids.join("pids.current")),
            // "max" means no limit, which containerd reports as 0.
            limit: limit.trim().parse().unwrap_or(0),
        });
    }
    if let Some(cpuacct) = paths.get("cpuacct") {
        let stat = read_keyed(&cpuacct.join("cpuacct.stat"));
        // cpuacct.stat counts USER_HZ ticks (100 a second on Linux).
        let ticks_to_ns = 10_000_000;
        let per_cpu = std::fs::read_to_string(cpuacct.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|value| value.parse().ok())
            .collect();
        let throttle = paths
            .get("cpu")
            .map(|cpu| read_keyed(&cpu.join("cpu.stat")))
            .unwrap_or_default();
        metrics.cpu = Some(v1::CpuStat {
            usage: Some(v1::CpuUsage {
                total: read_u64(&cpuacct.join("cpuacct.usage")),
                kernel: stat.get("system").copied().unwrap_or(0) * ticks_to_ns,
                user: stat.get("user").copied().unwrap_or(0) * ticks_to_ns,
                per_cpu,
            }),
            throttling: Some(v1::Throttle {
                periods: throttle.get("nr_periods").copied().unwrap_or(0),
                throttled_periods: throttle.get("nr_throttled").copied().unwrap_or(0),
                throttled_time: throttle.get("throttled_time").copied().unwrap_or(0),
            }),
        });
    }
    if let Some(blkio) = paths.get("blkio") {
        metrics.blkio = Some(v1::BlkIoStat {
            io_service_bytes_recursive: blkio_entries(
                &blkio.join("blkio.throttle.io_service_bytes_recursive"),
            ),
            io_serviced_recursive: blkio_entries(
                &blkio.join("blkio.throttle.io_serviced_recursive"),
            ),
            ..Default::default()
        });
    }
    if let Some(memory) = paths.get("memory") {
        metrics.memory = Some(memory_v1(memory));
        let oom = read_keyed(&memory.join("memory.oom_control"));
        metrics.memory_oom_control = Some(v1::MemoryOomControl {
            oom_kill_disable: oom.get("oom_kill_disable").copied().unwrap_or(0),
            under_oom: oom.get("under_oom").copied().unwrap_or(0),
            oom_kill: oom.get("oom_kill").copied().unwrap_or(0),
        });
    }
    metrics
}

/// Reads a blkio file of `MAJOR:MINOR OP VALUE` lines, such as
/// `blkio.throttle.io_service_bytes_recursive`; the closing `Total` line
/// has no device and is left out.
fn blkio_entries(path: &Path) -> Vec<v1::BlkIoEntry> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_blkio(&text)
}

fn parse_blkio(text: &str) -> Vec<v1::BlkIoEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (major, minor) = fields.next()?.split_once(':')?;
            let op = fields.next()?;
            let value = fields.next()?.parse().ok()?;
            Some(v1::BlkIoEntry {
                op: op.to_owned(),
                device: String::new(),
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                value,
            })
        })
        .collect()
}

/// Reads `io.stat` lines of `MAJOR:MINOR rbytes=N wbytes=N rios=N wios=N ...`.
fn parse_io_stat(text: &str) -> Vec<v2::IoEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (major, minor) = fields.next()?.split_once(':')?;
            let mut entry = v2::IoEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                ..Default::default()
            };
            for field in fields {
                let Some((key, value)) = field.split_once('=') else {
                    continue;
                };
                let value = value.parse().unwrap_or(0);
                match key {
                    "rbytes" => entry.rbytes = value,
                    "wbytes" => entry.wbytes = value,
                    "rios" => entry.rios = value,
                    "wios" => entry.wios = value,
                    _ => {}
                }
            }
            Some(entry)
        })
        .collect()
}

fn memory_v1(dir: &Path) -> v1::MemoryStat {
    let stat = read_keyed(&dir.join("memory.stat"));
    let get = |key: &str| stat.get(key).copied().unwrap_or(0);
    let entry = |prefix: &str| {
        Some(v1::MemoryEntry {
            limit: read_u64(&dir.join(format!("{prefix}.limit_in_bytes"))),
            usage: read_u64(&dir.join(format!("{prefix}.usage_in_bytes"))),
            max: read_u64(&dir.join(format!("{prefix}.max_usage_in_bytes"))),
            failcnt: read_u64(&dir.join(format!("{prefix}.failcnt"))),
        })
    };
    v1::MemoryStat {
        cache: get("cache"),
        rss: get("rss"),
        rss_huge: get("rss_huge"),
        mapped_file: get("mapped_file"),
        dirty: get("dirty"),
        writeback: get("writeback"),
        pg_pg_in: get("pgpgin"),
        pg_pg_out: get("pgpgout"),
        pg_fault: get("pgfault"),
        pg_maj_fault: get("pgmajfault"),
        inactive_anon: get("inactive_anon"),
        active_anon: get("active_anon"),
        inactive_file: get("inactive_file"),
        active_file: get("active_file"),
        unevictable: get("unevictable"),
        hierarchical_memory_limit: get("hierarchical_memory_limit"),
        hierarchical_swap_limit: get("hierarchical_memsw_limit"),
        total_cache: get("total_cache"),
        total_rss: get("total_rss"),
        total_rss_huge: get("total_rss_huge"),
        total_mapped_file: get("total_mapped_file"),
        total_dirty: get("total_dirty"),
        total_writeback: get("total_writeback"),
        total_pg_pg_in: get("total_pgpgin"),
        total_pg_pg_out: get("total_pgpgout"),
        total_pg_fault: get("total_pgfault"),
        total_pg_maj_fault: get("total_pgmajfault"),
        total_inactive_anon: get("total_inactive_anon"),
        total_active_anon: get("total_active_anon"),
        total_inactive_file: get("total_inactive_file"),
        total_active_file: get("total_active_file"),
        total_unevictable: get("total_unevictable"),
        usage: entry("memory"),
        swap: entry("memory.memsw"),
        kernel: entry("memory.kmem"),
        kernel_tcp: entry("memory.kmem.tcp"),
    }
}

fn collect_v2(dir: &Path) -> v2::Metrics {
    let cpu = read_keyed(&dir.join("cpu.stat"));
    let memory = read_keyed(&dir.join("memory.stat"));
    let limit = std::fs::read_to_string(dir.join("pids.max")).unwrap_or_default();
    v2::Metrics {
        pids: Some(v2::PidsStat {
            current: read_u64(&dir.join("pids.current")),
            limit: limit.trim().parse().unwrap_or(0),
        }),
        cpu: Some(v2::CpuStat {
            usage_usec: cpu.get("usage_usec").copied().unwrap_or(0),
            user_usec: cpu.get("user_usec").copied().unwrap_or(0),
            system_usec: cpu.get("system_usec").copied().unwrap_or(0),
            nr_periods: cpu.get("nr_periods").copied().unwrap_or(0),
            nr_throttled: cpu.get("nr_throttled").copied().unwrap_or(0),
            throttled_usec: cpu.get("throttled_usec").copied().unwrap_or(0),
            ..Default::default()
        }),
        memory: Some(v2::MemoryStat {
            anon: memory.get("anon").copied().unwrap_or(0),
            file: memory.get("file").copied().unwrap_or(0),
            inactive_file: memory.get("inactive_file").copied().unwrap_or(0),
            active_file: memory.get("active_file").copied().unwrap_or(0),
            usage: read_u64(&dir.join("memory.current")),
            usage_limit: read_u64(&dir.join("memory.max")),
            swap_usage: read_u64(&dir.join("memory.swap.current")),
            ..Default::default()
        }),
        io: Some(v2::IoStat {
            usage: parse_io_stat(&std::fs::read_to_string(dir.join("io.stat")).unwrap_or_default()),
            psi: None,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkio_lines_without_total() {
        let entries = parse_blkio("8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\nTotal 4608\n");
        assert_eq!(entries.len(), 3);
        assert_eq!((entries[0].major, entries[0].minor), (8, 0));
        assert_eq!(entries[0].op, "Read");
        assert_eq!(entries[0].value, 4096);
        assert_eq!(entries[1].op, "Write");
        assert_eq!(entries[1].value, 512);
    }

    #[test]
    fn io_stat_keys() {
        let entries = parse_io_stat("254:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].major, entries[0].minor), (254, 0));
        assert_eq!((entries[0].rbytes, entries[0].wbytes), (100, 200));
        assert_eq!((entries[0].rios, entries[0].wios), (1, 2));
    }
}

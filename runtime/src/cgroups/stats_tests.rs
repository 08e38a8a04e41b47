//! Parsers of the statistics files, on sample text in the kernel's formats,
//! and the JSON shape of the statistics.

use std::fs;
use std::path::Path;

use super::oom::watch_v2;
use super::stats::{page_size_name, parse_counter, parse_key_values, MemoryEntry, Stats};
use super::stats_v1::{parse_blkio, parse_cpu_list, parse_usage_all};
use super::stats_v2::{apply_cpu_stat, combine_swap, parse_io_stat};

fn path() -> &'static Path {
    Path::new("/sample")
}

#[test]
fn counter_special_values() {
    assert_eq!(parse_counter(path(), "42\n").unwrap(), 42);
    assert_eq!(parse_counter(path(), "max").unwrap(), u64::MAX);
    assert_eq!(parse_counter(path(), "-1").unwrap(), 0);
    assert!(parse_counter(path(), "lots").is_err());
}

#[test]
fn key_values_of_memory_stat() {
    let text = "cache 4096\nrss 53248\nhierarchical_memory_limit 9223372036854771712\n";
    let values = parse_key_values(path(), text).unwrap();
    assert_eq!(values["cache"], 4096);
    assert_eq!(values["rss"], 53248);
    assert_eq!(values["hierarchical_memory_limit"], 9223372036854771712);
    assert!(parse_key_values(path(), "cache\n").is_err());
    assert!(parse_key_values(path(), "cache 1 2\n").is_err());
}

#[test]
fn blkio_lines_and_total() {
    let text = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\nTotal 12288\n";
    let entries = parse_blkio(path(), text).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].major, 8);
    assert_eq!(entries[0].minor, 0);
    assert_eq!(entries[0].op, "Read");
    assert_eq!(entries[0].value, 4096);
    assert_eq!(entries[1].op, "Write");

    let untyped = parse_blkio(path(), "253:1 77\n").unwrap();
    assert_eq!(untyped[0].op, "");
    assert_eq!(untyped[0].value, 77);
    assert!(parse_blkio(path(), "8:0\n").is_err());
}

#[test]
fn cpuacct_usage_all_columns() {
    let text = "cpu user system\n0 100 200\n1 300 400\n";
    let (user, kernel) = parse_usage_all(path(), text).unwrap();
    assert_eq!(user, vec![100, 300]);
    assert_eq!(kernel, vec![200, 400]);
}

#[test]
fn cpu_lists() {
    assert_eq!(parse_cpu_list("0-3,7").unwrap(), vec![0, 1, 2, 3, 7]);
    assert_eq!(parse_cpu_list("0\n").unwrap(), vec![0]);
    assert_eq!(parse_cpu_list("").unwrap(), Vec::<u16>::new());
    assert!(parse_cpu_list("3-1").is_none());
    assert!(parse_cpu_list("a").is_none());
}

#[test]
fn huge_page_size_names() {
    assert_eq!(page_size_name(2048), "2MB");
    assert_eq!(page_size_name(1 << 20), "1GB");
    assert_eq!(page_size_name(64), "64KB");
}

#[test]
fn v2_cpu_stat_in_nanoseconds() {
    let text = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\n\
                nr_throttled 2\nthrottled_usec 30\nnr_bursts 0\nburst_usec 0\n";
    let mut stats = Stats::default();
    apply_cpu_stat(&parse_key_values(path(), text).unwrap(), &mut stats);
    assert_eq!(stats.cpu.usage.total, 1_500_000);
    assert_eq!(stats.cpu.usage.user, 1_000_000);
    assert_eq!(stats.cpu.usage.kernel, 500_000);
    assert_eq!(stats.cpu.throttling.periods, 7);
    assert_eq!(stats.cpu.throttling.throttled_periods, 2);
    assert_eq!(stats.cpu.throttling.throttled_time, 30_000);
}

#[test]
fn v2_io_stat_to_v1_tables() {
    let text = "8:16 rbytes=1024 wbytes=2048 rios=3 wios=4 dbytes=0 dios=0\n\
                253:0 rbytes=5 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n";
    let blkio = parse_io_stat(path(), text).unwrap();
    let bytes = &blkio.io_service_bytes_recursive;
    assert_eq!(bytes.len(), 4);
    assert_eq!((bytes[0].major, bytes[0].minor), (8, 16));
    assert_eq!(bytes[0].op, "Read");
    assert_eq!(bytes[0].value, 1024);
    assert_eq!(bytes[1].op, "Write");
    assert_eq!(bytes[1].value, 2048);
    let serviced = &blkio.io_serviced_recursive;
    assert_eq!(serviced.len(), 4);
    assert_eq!(serviced[1].value, 4);
    assert!(blkio.sectors_recursive.is_empty());
    assert!(parse_io_stat(path(), "8:x rbytes=1\n").is_err());
}

#[test]
fn v2_swap_adds_memory() {
    let memory = MemoryEntry {
        limit: 100,
        usage: 40,
        max: 50,
        failcnt: 0,
    };
    let limited = combine_swap(&memory, 10, 20);
    assert_eq!(limited.usage, 50);
    assert_eq!(limited.limit, 120);
    assert_eq!(limited.max, 0);
    let unlimited = combine_swap(&memory, 10, u64::MAX);
    assert_eq!(unlimited.limit, u64::MAX);
}

#[test]
fn v2_directory_read() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("pids.current", "3\n"),
        ("pids.max", "max\n"),
        ("memory.stat", "anon 8192\nfile 4096\n"),
        ("memory.current", "12288\n"),
        ("memory.max", "67108864\n"),
        ("memory.peak", "20000\n"),
        ("memory.swap.current", "0\n"),
        ("memory.swap.max", "max\n"),
        ("cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\n"),
        ("io.stat", "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n"),
    ];
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    let mut stats = Stats::default();
    super::stats_v2::read(dir.path(), &mut stats).unwrap();
    assert_eq!(stats.pids.current, 3);
    assert_eq!(stats.pids.limit, 0);
    assert_eq!(stats.memory.cache, 4096);
    assert_eq!(stats.memory.usage.usage, 12288);
    assert_eq!(stats.memory.usage.limit, 67108864);
    assert_eq!(stats.memory.usage.max, 20000);
    assert_eq!(stats.memory.swap.usage, 12288);
    assert_eq!(stats.memory.swap.limit, u64::MAX);
    assert_eq!(stats.memory.raw["anon"], 8192);
    assert_eq!(stats.cpu.usage.total, 10_000);
    assert_eq!(stats.blkio.io_serviced_recursive.len(), 2);
}

#[test]
fn v2_oom_kill_counter_watch() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("memory.events");
    let cgroup_events = dir.path().join("cgroup.events");
    fs::write(&events, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 1\n").unwrap();
    fs::write(&cgroup_events, "populated 1\nfrozen 0\n").unwrap();
    let mut watcher = watch_v2(dir.path()).unwrap();
    let news = watcher.read().unwrap();
    assert_eq!(news.ooms, 0, "kills before the watch are not news");
    assert!(!news.ended);

    fs::write(&events, "low 0\nhigh 0\nmax 3\noom 2\noom_kill 3\n").unwrap();
    let news = watcher.read().unwrap();
    assert_eq!(news.ooms, 2);
    assert!(!news.ended);

    fs::write(&cgroup_events, "populated 0\nfrozen 0\n").unwrap();
    let news = watcher.read().unwrap();
    assert_eq!(news.ooms, 0);
    assert!(news.ended);
}

#[test]
fn empty_stats_json_shape() {
    let json = serde_json::to_value(Stats::default()).unwrap();
    let expected = serde_json::json!({
        "cpu": {"usage": {"kernel": 0, "user": 0}, "throttling": {}},
        "cpuset": {
            "cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
            "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
            "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0
        },
        "memory": {
            "usage": {"limit": 0, "failcnt": 0},
            "swap": {"limit": 0, "failcnt": 0},
            "kernel": {"limit": 0, "failcnt": 0},
            "kernelTCP": {"limit": 0, "failcnt": 0}
        },
        "pids": {},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": null
    });
    assert_eq!(json, expected);
}

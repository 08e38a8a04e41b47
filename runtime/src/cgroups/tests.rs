//! Tests of path computation, value conversions and error cases; none needs
//! root or touches /sys/fs/cgroup.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxMemoryBuilder};

use super::layout::*;
use super::*;

/// Mountinfo of a hybrid host whose cpu and cpuacct share a hierarchy.
const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/my\\040dir rw - ext4 /dev/sda rw
";

const HYBRID_PROC_CGROUP: &str = "\
9:name=systemd:/
4:memory:/process_api/abc
3:cpuset:/
1:cpu,cpuacct:/user
0::/session
";

#[test]
fn mountinfo_keeps_cgroup_mounts() {
    let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
    assert_eq!(mounts.len(), 5);
    assert_eq!(mounts[0].controllers, vec!["cpu", "cpuacct"]);
    assert_eq!(mounts[1].controllers, vec!["cpuset"]);
    assert_eq!(mounts[3].controllers, vec!["name=systemd"]);
    assert!(mounts[4].v2);
    assert_eq!(mounts[4].mount_point, Path::new("/sys/fs/cgroup/unified"));
}

#[test]
fn mountinfo_unescapes_octal() {
    let line = "50 23 0:40 /a\\040b /mnt/c\\134d rw - cgroup cgroup rw,pids\n";
    let mounts = parse_mountinfo(line);
    assert_eq!(mounts[0].root, Path::new("/a b"));
    assert_eq!(mounts[0].mount_point, Path::new("/mnt/c\\d"));
}

#[test]
fn proc_cgroup_splits_controllers() {
    let own = parse_proc_cgroup(HYBRID_PROC_CGROUP);
    assert_eq!(own.v1["memory"], Path::new("/process_api/abc"));
    assert_eq!(own.v1["cpu"], Path::new("/user"));
    assert_eq!(own.v1["cpuacct"], Path::new("/user"));
    assert_eq!(own.v1["name=systemd"], Path::new("/"));
    assert_eq!(own.unified.as_deref(), Some(Path::new("/session")));
}

#[test]
fn cgroups_path_forms() {
    let cases = [
        (Some("/a/b"), CgroupPath::Absolute(PathBuf::from("a/b"))),
        (
            Some("/a/./b/../c"),
            CgroupPath::Absolute(PathBuf::from("a/c")),
        ),
        (Some("a/b"), CgroupPath::Relative(PathBuf::from("a/b"))),
        (Some("a/../b"), CgroupPath::Relative(PathBuf::from("b"))),
        (None, CgroupPath::Relative(PathBuf::from("ctr"))),
        (Some(""), CgroupPath::Relative(PathBuf::from("ctr"))),
    ];
    for (given, expected) in cases {
        assert_eq!(
            parse_cgroups_path(given, "ctr").unwrap(),
            expected,
            "{given:?}"
        );
    }
}

#[test]
fn cgroups_path_rejects_escape() {
    for given in ["../x", "a/../../x", "/../x", "/a/../../x"] {
        let err = parse_cgroups_path(Some(given), "ctr").unwrap_err();
        assert!(
            matches!(err, CgroupError::InvalidPath { .. }),
            "{given}: {err}"
        );
        assert!(err.to_string().contains(given), "{err}");
    }
}

#[test]
fn cgroups_path_rejects_systemd_form() {
    let err = parse_cgroups_path(Some("system.slice:hull:ctr"), "ctr").unwrap_err();
    assert!(matches!(err, CgroupError::SystemdPathUnsupported(_)));
    assert!(err.to_string().contains("system.slice:hull:ctr"));
}

#[test]
fn cgroups_path_rejects_bad_default() {
    assert!(parse_cgroups_path(None, "a/b").is_err());
    assert!(parse_cgroups_path(None, "..").is_err());
    assert!(parse_cgroups_path(Some("."), "ctr").is_err());
}

fn hybrid_dirs(path: &CgroupPath) -> CgroupDirs {
    let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
    let own = parse_proc_cgroup(HYBRID_PROC_CGROUP);
    compute_dirs(CgroupMode::Hybrid, &mounts, &own, path).unwrap()
}

#[test]
fn relative_path_below_own_cgroup() {
    let dirs = hybrid_dirs(&CgroupPath::Relative(PathBuf::from("ctr")));
    let memory = &dirs.v1["memory"];
    assert_eq!(memory.0, Path::new("/sys/fs/cgroup/memory"));
    assert_eq!(
        memory.1,
        Path::new("/sys/fs/cgroup/memory/process_api/abc/ctr")
    );
    assert_eq!(
        dirs.v1["cpu"].1,
        Path::new("/sys/fs/cgroup/cpu,cpuacct/user/ctr")
    );
    assert_eq!(dirs.v1["cpuacct"].1, dirs.v1["cpu"].1);
    assert_eq!(dirs.v1["cpuset"].1, Path::new("/sys/fs/cgroup/cpuset/ctr"));
    assert_eq!(
        dirs.v1["name=systemd"].1,
        Path::new("/sys/fs/cgroup/systemd/ctr")
    );
    let unified = dirs.unified.unwrap();
    assert_eq!(unified.1, Path::new("/sys/fs/cgroup/unified/session/ctr"));
}

#[test]
fn absolute_path_below_roots() {
    let dirs = hybrid_dirs(&CgroupPath::Absolute(PathBuf::from("hull/ctr")));
    assert_eq!(
        dirs.v1["memory"].1,
        Path::new("/sys/fs/cgroup/memory/hull/ctr")
    );
    assert_eq!(
        dirs.v1["cpu"].1,
        Path::new("/sys/fs/cgroup/cpu,cpuacct/hull/ctr")
    );
    assert_eq!(
        dirs.unified.unwrap().1,
        Path::new("/sys/fs/cgroup/unified/hull/ctr")
    );
}

#[test]
fn unified_mode_has_no_v1_dirs() {
    let mounts = parse_mountinfo("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
    let own = parse_proc_cgroup("0::/user.slice/session-1.scope\n");
    let path = CgroupPath::Relative(PathBuf::from("ctr"));
    let dirs = compute_dirs(CgroupMode::Unified, &mounts, &own, &path).unwrap();
    assert!(dirs.v1.is_empty());
    let (mount, dir) = dirs.unified.unwrap();
    assert_eq!(mount, Path::new("/sys/fs/cgroup"));
    assert_eq!(
        dir,
        Path::new("/sys/fs/cgroup/user.slice/session-1.scope/ctr")
    );
}

#[test]
fn legacy_mode_has_no_unified_dir() {
    let mounts = parse_mountinfo(HYBRID_MOUNTINFO);
    let own = parse_proc_cgroup(HYBRID_PROC_CGROUP);
    let path = CgroupPath::Absolute(PathBuf::from("ctr"));
    let dirs = compute_dirs(CgroupMode::Legacy, &mounts, &own, &path).unwrap();
    assert!(dirs.unified.is_none());
    assert_eq!(dirs.v1.len(), 5);
}

#[test]
fn mount_root_is_stripped() {
    // A cgroup namespace or a bind mount shows only /outer of the hierarchy.
    let mounts =
        parse_mountinfo("35 31 0:32 /outer /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
    let path = CgroupPath::Relative(PathBuf::from("ctr"));
    let inside = parse_proc_cgroup("4:memory:/outer/inner\n");
    let dirs = compute_dirs(CgroupMode::Legacy, &mounts, &inside, &path).unwrap();
    assert_eq!(
        dirs.v1["memory"].1,
        Path::new("/sys/fs/cgroup/memory/inner/ctr")
    );

    let outside = parse_proc_cgroup("4:memory:/elsewhere\n");
    let err = compute_dirs(CgroupMode::Legacy, &mounts, &outside, &path).unwrap_err();
    assert!(err.to_string().contains("/elsewhere"), "{err}");
}

#[test]
fn shares_to_weight() {
    assert_eq!(cpu_shares_to_weight(0), 0);
    assert_eq!(cpu_shares_to_weight(1), 1);
    assert_eq!(cpu_shares_to_weight(2), 1);
    assert_eq!(cpu_shares_to_weight(1024), 39);
    assert_eq!(cpu_shares_to_weight(262_144), 10_000);
    assert_eq!(cpu_shares_to_weight(1_000_000), 10_000);
}

#[test]
fn blkio_to_io_weight() {
    assert_eq!(blkio_weight_to_io_weight(0), 0);
    assert_eq!(blkio_weight_to_io_weight(10), 1);
    assert_eq!(blkio_weight_to_io_weight(500), 4950);
    assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
}

#[test]
fn swap_conversion() {
    assert_eq!(swap_to_v2(0, 0), Ok(0));
    assert_eq!(swap_to_v2(0, -1), Ok(-1));
    assert_eq!(swap_to_v2(-1, 100), Ok(-1));
    assert_eq!(swap_to_v2(0, 100), Ok(0));
    assert_eq!(swap_to_v2(300, 100), Ok(200));
    assert_eq!(swap_to_v2(100, 100), Ok(0));
    let below = swap_to_v2(50, 100).unwrap_err();
    assert!(below.contains("50"), "{below}");
    assert!(swap_to_v2(300, 0).is_err());
    assert!(swap_to_v2(300, -1).is_err());
    assert!(swap_to_v2(-5, 100).is_err());
}

#[test]
fn v1_memory_limits_checked() {
    let memory = |limit: i64, swap: Option<i64>| {
        let mut b = LinuxMemoryBuilder::default().limit(limit);
        if let Some(swap) = swap {
            b = b.swap(swap);
        }
        b.build().unwrap()
    };
    assert_eq!(
        memory_v1::limits(&memory(100, Some(200))),
        Ok((Some(100), Some(200)))
    );
    assert_eq!(
        memory_v1::limits(&memory(-1, None)),
        Ok((Some(-1), Some(-1)))
    );
    assert_eq!(memory_v1::limits(&memory(100, None)), Ok((Some(100), None)));
    let err = memory_v1::limits(&memory(200, Some(100))).unwrap_err();
    assert!(err.contains("100"), "{err}");
    assert!(err.contains("200"), "{err}");
    assert!(memory_v1::limits(&memory(-7, None)).is_err());
}

#[test]
fn device_rule_conversion() {
    use cgroups_rs::fs::devices::{DevicePermissions, DeviceType};
    let rule = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(LinuxDeviceType::C)
        .major(1)
        .access("rw")
        .build()
        .unwrap();
    let parts = devices::rule_parts(&rule).unwrap().unwrap();
    assert_eq!(parts.typ, DeviceType::Char);
    assert_eq!(parts.major, 1);
    assert_eq!(parts.minor, -1);
    assert_eq!(
        parts.perms,
        vec![DevicePermissions::Read, DevicePermissions::Write]
    );

    let fifo = LinuxDeviceCgroupBuilder::default()
        .typ(LinuxDeviceType::P)
        .build()
        .unwrap();
    assert_eq!(devices::rule_parts(&fifo).unwrap(), None);

    // runc 1.1 ignores letters other than r, w and m.
    let extra = LinuxDeviceCgroupBuilder::default()
        .access("rwa")
        .build()
        .unwrap();
    let parts = devices::rule_parts(&extra).unwrap().unwrap();
    assert_eq!(
        parts.perms,
        vec![DevicePermissions::Read, DevicePermissions::Write]
    );

    let no_known_letter = LinuxDeviceCgroupBuilder::default()
        .access("a")
        .build()
        .unwrap();
    assert_eq!(devices::rule_parts(&no_known_letter).unwrap(), None);
}

#[test]
fn default_devices_match_runc() {
    let rules = default_device_rules();
    assert_eq!(rules.len(), 11);
    assert!(rules.iter().all(|r| r.allow()));
    let null = &rules[2];
    assert_eq!((null.major(), null.minor()), (Some(1), Some(3)));
}

#[test]
fn manager_serde_round_trip() {
    let dirs = hybrid_dirs(&CgroupPath::Absolute(PathBuf::from("ctr")));
    let manager = Manager::from_dirs("/ctr".to_string(), CgroupMode::Hybrid, dirs);
    let json = serde_json::to_string(&manager).unwrap();
    let back: Manager = serde_json::from_str(&json).unwrap();
    assert_eq!(back, manager);
    let paths = back.paths();
    assert_eq!(paths["unified"], Path::new("/sys/fs/cgroup/unified/ctr"));
    assert_eq!(paths["memory"], Path::new("/sys/fs/cgroup/memory/ctr"));
}

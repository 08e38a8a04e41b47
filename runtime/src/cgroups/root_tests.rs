//! Tests against the host's real cgroup hierarchies. They need root and
//! return early without it. Each test uses a cgroup name with its pid, and
//! a guard removes the cgroups, the child process and any mount also when
//! an assertion fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use oci_spec::runtime::LinuxResources;

use super::layout::{CgroupDirs, CgroupMode};
use super::*;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn unique_name(test: &str) -> String {
    format!("hull-test-{test}-{}", std::process::id())
}

/// Kills the child and destroys the cgroup when dropped.
struct Guard {
    manager: Manager,
    children: Vec<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A frozen cgroup keeps the killed child, so thaw before removing.
        let _ = self.manager.set_frozen(false);
        if let Err(err) = self.manager.destroy() {
            eprintln!("cleanup: {err}");
        }
    }
}

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("valid resources JSON")
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

fn spawn_sleep() -> Child {
    Command::new("sleep")
        .arg("1000")
        .spawn()
        .expect("spawn sleep")
}

fn process_state(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn v1_limits_membership_freeze_destroy() {
    if !is_root() || detect_mode() == CgroupMode::Unified {
        eprintln!("skipped: needs root on a cgroup v1 or hybrid host");
        return;
    }
    let name = unique_name("v1");
    let manager = Manager::new(Some(&format!("/{name}")), "ignored").unwrap();
    let mut guard = Guard {
        manager: manager.clone(),
        children: Vec::new(),
    };
    let paths = manager.paths();
    let has_blkio_weight = Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists();
    let blkio = if has_blkio_weight {
        r#","blockIO":{"weight":300}"#
    } else {
        ""
    };
    let r = resources(&format!(
        r#"{{
        "memory": {{"limit": 67108864, "swap": 134217728, "reservation": 33554432, "swappiness": 10}},
        "cpu": {{"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"}},
        "pids": {{"limit": 32}},
        "devices": [{{"allow": false, "access": "rwm"}}, {{"allow": true, "type": "c", "major": 4, "minor": 64, "access": "rw"}}]
        {blkio}
    }}"#
    ));
    manager.create(Some(&r)).unwrap();
    assert!(manager.exists());

    let memory = &paths["memory"];
    assert_eq!(read(memory, "memory.limit_in_bytes"), "67108864");
    assert_eq!(read(memory, "memory.memsw.limit_in_bytes"), "134217728");
    assert_eq!(read(memory, "memory.soft_limit_in_bytes"), "33554432");
    assert_eq!(read(memory, "memory.swappiness"), "10");
    assert_eq!(read(&paths["cpu"], "cpu.shares"), "512");
    assert_eq!(read(&paths["cpu"], "cpu.cfs_quota_us"), "20000");
    assert_eq!(read(&paths["cpu"], "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&paths["cpuset"], "cpuset.cpus"), "0");
    assert_eq!(read(&paths["cpuset"], "cpuset.mems"), "0");
    assert_eq!(read(&paths["pids"], "pids.max"), "32");
    let devices = read(&paths["devices"], "devices.list");
    assert!(devices.contains("c 4:64 rw"), "{devices}");
    assert!(devices.contains("c 1:3 rwm"), "{devices}");
    assert!(!devices.contains("a *:* rwm"), "{devices}");
    if has_blkio_weight {
        assert_eq!(read(&paths["blkio"], "blkio.weight"), "300");
    }

    let child = spawn_sleep();
    let pid = child.id();
    guard.children.push(child);
    manager.add_process(pid as i32).unwrap();
    assert_eq!(manager.pids().unwrap(), vec![pid as i32]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.contains(&format!("freezer:/{name}")), "{own}");
    if paths.contains_key("unified") {
        assert!(own.contains(&format!("0::/{name}")), "{own}");
    }

    manager.set_frozen(true).unwrap();
    assert!(manager.is_frozen().unwrap());
    assert_eq!(read(&paths["freezer"], "freezer.state"), "FROZEN");
    assert!(process_state(pid).starts_with('D') || process_state(pid).starts_with('S'));
    manager.set_frozen(false).unwrap();
    assert!(!manager.is_frozen().unwrap());

    // A memory limit below the anonymous memory in use cannot be reclaimed.
    // v1 keeps the charges of memory touched before the move in the old
    // cgroup, so a second child allocates its memory after joining.
    let mut allocator = Command::new("sh")
        .args([
            "-c",
            "read _; x=$(seq 1 200000); echo ready; exec sleep 1000",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut stdin = allocator.stdin.take().unwrap();
    let stdout = allocator.stdout.take().unwrap();
    let allocator_pid = allocator.id();
    guard.children.push(allocator);
    manager.add_process(allocator_pid as i32).unwrap();
    stdin.write_all(b"go\n").unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let tiny = resources(r#"{"memory": {"limit": 4096}}"#);
    let err = manager.create(Some(&tiny)).unwrap_err();
    assert!(matches!(err, CgroupError::InvalidValue { .. }), "{err}");
    assert!(err.to_string().contains("4096"), "{err}");

    for mut child in guard.children.drain(..) {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    manager.destroy().unwrap();
    for dir in paths.values() {
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
    // A second destroy finds nothing to do.
    manager.destroy().unwrap();
}

#[test]
fn v1_default_path_below_own_cgroup() {
    if !is_root() || detect_mode() == CgroupMode::Unified {
        eprintln!("skipped: needs root on a cgroup v1 or hybrid host");
        return;
    }
    let id = unique_name("rel");
    let manager = Manager::new(None, &id).unwrap();
    let _guard = Guard {
        manager: manager.clone(),
        children: Vec::new(),
    };
    let own = layout::parse_proc_cgroup(&std::fs::read_to_string("/proc/self/cgroup").unwrap());
    let expected = Path::new("/sys/fs/cgroup/memory")
        .join(own.v1["memory"].strip_prefix("/").unwrap())
        .join(&id);
    assert_eq!(manager.paths()["memory"], expected);
    manager.create(None).unwrap();
    assert!(expected.is_dir());
    manager.destroy().unwrap();
    assert!(!expected.exists());
}

#[test]
fn v1_invalid_values_rejected() {
    if !is_root() || detect_mode() == CgroupMode::Unified {
        eprintln!("skipped: needs root on a cgroup v1 or hybrid host");
        return;
    }
    let name = unique_name("invalid");
    let manager = Manager::new(Some(&format!("/{name}")), "ignored").unwrap();
    let _guard = Guard {
        manager: manager.clone(),
        children: Vec::new(),
    };
    let cases = [
        (
            r#"{"memory": {"limit": 134217728, "swap": 67108864}}"#,
            "67108864",
        ),
        (r#"{"memory": {"swappiness": 101}}"#, "101"),
        (r#"{"cpu": {"cpus": "9999"}}"#, "9999"),
        (
            r#"{"hugepageLimits": [{"pageSize": "3MB", "limit": 0}]}"#,
            "hugetlb",
        ),
    ];
    for (json, expected) in cases {
        let err = manager.create(Some(&resources(json))).unwrap_err();
        assert!(err.to_string().contains(expected), "{json}: {err}");
        // create removes what it made when applying fails.
        assert!(!manager.paths()["memory"].exists(), "{json}");
    }
}

/// A private cgroup2 mount, unmounted on drop.
struct Cgroup2Mount {
    dir: tempfile::TempDir,
    restore_subtree: bool,
}

impl Drop for Cgroup2Mount {
    fn drop(&mut self) {
        if self.restore_subtree {
            let _ = std::fs::write(self.dir.path().join("cgroup.subtree_control"), "-hugetlb");
        }
        if let Err(err) = nix::mount::umount(self.dir.path()) {
            eprintln!("cleanup: umount {}: {err}", self.dir.path().display());
        }
    }
}

fn mount_cgroup2() -> Cgroup2Mount {
    let dir = tempfile::tempdir().unwrap();
    nix::mount::mount(
        Some("none"),
        dir.path(),
        Some("cgroup2"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount cgroup2");
    let subtree = read(dir.path(), "cgroup.subtree_control");
    Cgroup2Mount {
        restore_subtree: !subtree.contains("hugetlb"),
        dir,
    }
}

#[test]
fn v2_private_mount_hugetlb_freeze_destroy() {
    if !is_root() || detect_mode() != CgroupMode::Hybrid {
        eprintln!("skipped: needs root on a hybrid host, whose cgroup2 hierarchy has no processes to move");
        return;
    }
    let mount = mount_cgroup2();
    let root = mount.dir.path().to_path_buf();
    let name = unique_name("v2");
    let dir: PathBuf = root.join(&name).join("ctr");
    let dirs = CgroupDirs {
        v1: Default::default(),
        unified: Some((root.clone(), dir.clone())),
    };
    let manager = Manager::from_dirs(format!("/{name}/ctr"), CgroupMode::Unified, dirs);
    let parent = Manager::from_dirs(
        format!("/{name}"),
        CgroupMode::Unified,
        CgroupDirs {
            v1: Default::default(),
            unified: Some((root.clone(), root.join(&name))),
        },
    );
    let _parent_guard = Guard {
        manager: parent,
        children: Vec::new(),
    };
    let mut guard = Guard {
        manager: manager.clone(),
        children: Vec::new(),
    };

    let has_hugetlb = read(&root, "cgroup.controllers").contains("hugetlb");
    let r = if has_hugetlb {
        resources(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]}"#)
    } else {
        LinuxResources::default()
    };
    manager.create(Some(&r)).unwrap();
    if has_hugetlb {
        assert_eq!(read(&dir, "hugetlb.2MB.max"), "4194304");
        let subtree = read(&root.join(&name), "cgroup.subtree_control");
        assert!(subtree.contains("hugetlb"), "{subtree}");
    }

    let child = spawn_sleep();
    let pid = child.id();
    guard.children.push(child);
    manager.add_process(pid as i32).unwrap();
    assert_eq!(manager.pids().unwrap(), vec![pid as i32]);

    manager.set_frozen(true).unwrap();
    assert!(manager.is_frozen().unwrap());
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    manager.set_frozen(false).unwrap();
    assert!(!manager.is_frozen().unwrap());

    // The hybrid cgroup2 hierarchy has no memory controller.
    let err = manager
        .create(Some(&resources(r#"{"memory": {"limit": 67108864}}"#)))
        .unwrap_err();
    assert!(
        matches!(
            err,
            CgroupError::ControllerMissing {
                controller: "memory",
                ..
            }
        ),
        "{err}"
    );
    let err = manager
        .create(Some(&resources(r#"{"unified": {"memory.max": "1"}}"#)))
        .unwrap_err();
    assert!(err.to_string().contains("memory.max"), "{err}");

    for mut child in guard.children.drain(..) {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    manager.destroy().unwrap();
    assert!(!dir.exists());
    drop(guard);
    drop(_parent_guard);
    assert!(!root.join(&name).exists());
    drop(mount);
}

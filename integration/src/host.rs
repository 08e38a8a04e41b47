//! Observations of the host: mounts, cgroups, processes, namespaces.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Returns whether `tool` is an executable found in `PATH`.
pub fn has_tool(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

/// Returns the lines of this process's `/proc/self/mountinfo` whose mount
/// point or root contains `needle`.
pub fn mounts_mentioning(needle: &Path) -> Vec<String> {
    let needle = needle.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .expect("failed to read /proc/self/mountinfo")
        .lines()
        .filter(|line| line.contains(needle.as_ref()))
        .map(str::to_owned)
        .collect()
}

/// Controller hierarchies mounted under `/sys/fs/cgroup`.
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    fs::read_dir(base)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default()
}

/// Returns every cgroup directory named `id` under `/sys/fs/cgroup`, up to
/// six levels deep (runtimes nest the container's cgroup under the caller's
/// own cgroup in some hierarchies).
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, id: &str, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if !kind.is_dir() {
                continue;
            }
            let path = entry.path();
            if entry.file_name() == id {
                found.push(path.clone());
            }
            if depth > 0 {
                walk(&path, id, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    for hierarchy in cgroup_hierarchies() {
        walk(&hierarchy, id, 6, &mut found);
    }
    found
}

/// Removes the cgroup directories that a runtime left for `id`, deepest first.
pub fn remove_cgroups(id: &str) {
    let mut dirs = cgroup_dirs(id);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        let _ = fs::remove_dir(dir);
    }
}

/// Returns whether a process with `pid` exists and is not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// Returns the inode of `/proc/self/ns/KIND` of this process, as the number
/// that `readlink` shows in `KIND:[N]`.
pub fn namespace_inode(kind: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let path = format!("/proc/self/ns/{kind}");
    fs::metadata(&path)
        .unwrap_or_else(|e| panic!("failed to stat {path}: {e}"))
        .ino()
}

/// A named network namespace made with `ip netns add`, deleted on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `/run/netns/NAME`.
    pub fn create(name: &str) -> NetNs {
        let status = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .expect("failed to run ip");
        assert!(status.success(), "ip netns add {name} failed");
        NetNs {
            name: name.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Returns the namespace's inode.
    pub fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(self.path())
            .expect("failed to stat the network namespace")
            .ino()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// Returns the pids of processes whose command line contains `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Returns the pids of processes whose root directory is `root` or lies
/// under it, as `/proc/PID/root` shows.
pub fn processes_rooted_in(root: &Path) -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/root"))
                .map(|r| r.starts_with(root))
                .unwrap_or(false)
        })
        .collect()
}

/// Removes every cgroup directory named `name`, with the cgroups below it,
/// where they hold no process. Engines such as podman and containerd
/// create parent cgroups (and podman a `conmon` child) that outlive their
/// containers. rmdir fails on a cgroup that still has processes, so only
/// empty ones are removed.
pub fn remove_empty_cgroups(name: &str) {
    fn remove_tree(dir: &Path) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    for dir in cgroup_dirs(name) {
        remove_tree(&dir);
    }
    // conmon also makes plain directories for controllers this host does
    // not mount, in the tmpfs at /sys/fs/cgroup.
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = entry.path().join(name);
        let plain = nix::sys::statfs::statfs(&entry.path())
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
        if plain && dir.is_dir() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Panics unless process `pid` is in cgroup `path` in every hierarchy it
/// belongs to, as /proc/PID/cgroup shows from the host's cgroup namespace.
pub fn assert_in_cgroup(pid: i64, path: &str) {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read /proc/PID/cgroup");
    assert!(!text.trim().is_empty(), "process {pid} lists no cgroups");
    for line in text.lines() {
        let member = line.splitn(3, ':').nth(2).unwrap_or_default();
        assert_eq!(
            member, path,
            "process {pid} is not in {path}: {line}\n{text}"
        );
    }
}

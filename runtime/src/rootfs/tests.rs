//! Root-only tests: each runs `prepare`, `enter` and `finalize` in a forked
//! child inside a new mount namespace, which dies with the child and takes
//! every mount with it. The child sends its findings back through a pipe.
//! Without root the tests return early.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult};
use oci_spec::runtime::Spec;

use super::{finalize, prepare, Options, Rootfs};

const OPTIONS: Options = Options {
    new_mount_namespace: true,
    user_namespace: false,
    no_pivot: false,
};

fn enter_and_finalize_for_test(
    prepared: Rootfs,
    spec: &Spec,
    options: Options,
) -> Result<(), String> {
    prepared.enter().map_err(|e| e.to_string())?;
    finalize(spec, options).map_err(|e| e.to_string())
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Builds a minimal busybox rootfs in a temp dir: `<tmp>/rootfs`, with a sibling
/// `<tmp>/outside` that nothing may touch.
fn busybox_rootfs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create temp dir");
    let rootfs = dir.path().join("rootfs");
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp", "run", "var"] {
        fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    fs::create_dir_all(dir.path().join("outside")).unwrap();
    if Path::new("/bin/busybox").exists() {
        fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    }
    fs::write(rootfs.join("etc/marker"), "inside").unwrap();
    (dir, rootfs)
}

/// Runs `body` in a forked child in a new mount namespace and returns what
/// it produced, or its error text.
fn in_child(body: impl FnOnce() -> Result<String, String>) -> Result<String, String> {
    let (read_end, write_end) = pipe().expect("pipe");
    // SAFETY: the child only runs `body` and then `_exit`s; it never
    // returns into the test harness.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(read_end);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
                body()
            }));
            let message = match outcome {
                Ok(Ok(text)) => format!("ok\n{text}"),
                Ok(Err(text)) => format!("err\n{text}"),
                Err(_) => "err\npanic in the child".to_string(),
            };
            let mut file = fs::File::from(write_end);
            let _ = file.write_all(message.as_bytes());
            drop(file);
            // SAFETY: _exit ends the forked child without running the
            // parent's atexit handlers or destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut text = String::new();
            fs::File::from(read_end)
                .read_to_string(&mut text)
                .expect("read from child");
            let status = waitpid(child, None).expect("waitpid");
            assert!(
                matches!(status, WaitStatus::Exited(_, 0)),
                "child status {status:?}"
            );
            match text.split_once('\n') {
                Some(("ok", rest)) => Ok(rest.to_string()),
                Some(("err", rest)) => Err(rest.to_string()),
                _ => Err(format!("malformed child output {text:?}")),
            }
        }
    }
}

fn spec_from(json: serde_json::Value) -> Spec {
    serde_json::from_value(json).expect("valid spec")
}

/// Returns the mounts, masked and read-only paths of `runc spec` (runc 1.1).
fn runc_default_spec() -> Spec {
    spec_from(serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                "/proc/sysrq-trigger"]
        }
    }))
}

/// Returns `(mount point, mount options, fs type, super options)` of the
/// own mountinfo, for assertions.
fn mount_table() -> Result<Vec<(String, String, String, String)>, String> {
    let mounts = super::mountinfo::read_own().map_err(|e| e.to_string())?;
    Ok(mounts
        .into_iter()
        .map(|m| {
            (
                m.mount_point.display().to_string(),
                m.mount_options,
                m.fs_type,
                m.super_options,
            )
        })
        .collect())
}

fn find<'a>(table: &'a str, mount_point: &str) -> Option<&'a str> {
    table
        .lines()
        .find(|line| line.split(' ').next() == Some(mount_point))
}

fn table_text(table: &[(String, String, String, String)]) -> String {
    table
        .iter()
        .map(|(point, options, fs, super_options)| {
            format!("{point} {options} {fs} {super_options}\n")
        })
        .collect()
}

#[test]
fn default_spec_matches_runc_layout() {
    if !is_root() {
        return;
    }
    let (_dir, rootfs) = busybox_rootfs();
    let spec = runc_default_spec();
    let output = in_child(|| {
        let prepared = prepare(&spec, &rootfs, OPTIONS).map_err(|e| e.to_string())?;
        enter_and_finalize_for_test(prepared, &spec, OPTIONS)?;
        let mut text = table_text(&mount_table()?);
        let null = fs::metadata("/dev/null").map_err(|e| e.to_string())?;
        text += &format!(
            "null char={} rdev={:x} mode={:o}\n",
            null.file_type().is_char_device(),
            null.rdev(),
            null.mode() & 0o7777
        );
        let ptmx = fs::read_link("/dev/ptmx").map_err(|e| e.to_string())?;
        text += &format!("ptmx {}\n", ptmx.display());
        let fd_link = fs::read_link("/dev/fd").map_err(|e| e.to_string())?;
        text += &format!("fd {}\n", fd_link.display());
        let marker = fs::read_to_string("/etc/marker").map_err(|e| e.to_string())?;
        text += &format!("marker {marker}\n");
        Ok(text)
    })
    .expect("container set-up");

    let root = find(&output, "/").expect("root mount");
    assert!(root.contains(" ro,"), "root not read-only: {root}");
    let proc_line = find(&output, "/proc").expect("proc mount");
    assert!(proc_line.contains(" proc "), "{proc_line}");
    let dev = find(&output, "/dev").expect("/dev mount");
    assert!(dev.starts_with("/dev rw,nosuid tmpfs"), "{dev}");
    assert!(dev.contains("size=65536k"), "{dev}");
    let pts = find(&output, "/dev/pts").expect("/dev/pts mount");
    assert!(pts.contains("devpts"), "{pts}");
    assert!(pts.contains("ptmxmode=666"), "{pts}");
    let shm = find(&output, "/dev/shm").expect("/dev/shm mount");
    assert!(
        shm.starts_with("/dev/shm rw,nosuid,nodev,noexec,relatime tmpfs"),
        "{shm}"
    );
    let mqueue = find(&output, "/dev/mqueue").expect("/dev/mqueue mount");
    assert!(mqueue.contains("mqueue"), "{mqueue}");
    let sys = find(&output, "/sys").expect("/sys mount");
    assert!(
        sys.starts_with("/sys ro,nosuid,nodev,noexec,relatime sysfs"),
        "{sys}"
    );
    let cgroup = find(&output, "/sys/fs/cgroup").expect("cgroup tmpfs");
    assert!(cgroup.contains("tmpfs"), "{cgroup}");
    let proc_sys = find(&output, "/proc/sys").expect("/proc/sys read-only");
    assert!(proc_sys.starts_with("/proc/sys ro,"), "{proc_sys}");
    let acpi = find(&output, "/proc/acpi").expect("/proc/acpi masked");
    assert!(acpi.starts_with("/proc/acpi ro,"), "{acpi}");
    assert!(acpi.contains("tmpfs"), "{acpi}");
    let keys = find(&output, "/proc/keys").expect("/proc/keys masked");
    assert!(
        keys.contains("tmpfs"),
        "/proc/keys not covered by /dev/null: {keys}"
    );
    assert!(
        find(&output, "/sys/firmware").is_some(),
        "/sys/firmware not masked"
    );
    assert!(
        output.contains("null char=true rdev=103 mode=666"),
        "{output}"
    );
    assert!(output.contains("ptmx pts/ptmx"), "{output}");
    assert!(output.contains("fd /proc/self/fd"), "{output}");
    assert!(output.contains("marker inside"), "{output}");
}

#[test]
fn cgroup_v1_hierarchies_are_bound_read_only() {
    if !is_root() || !Path::new("/sys/fs/cgroup/cpu").exists() {
        return;
    }
    let (_dir, rootfs) = busybox_rootfs();
    let spec = runc_default_spec();
    let output = in_child(|| {
        let prepared = prepare(&spec, &rootfs, OPTIONS).map_err(|e| e.to_string())?;
        enter_and_finalize_for_test(prepared, &spec, OPTIONS)?;
        Ok(table_text(&mount_table()?))
    })
    .expect("container set-up");
    let cpu = find(&output, "/sys/fs/cgroup/cpu").expect("cpu hierarchy");
    assert!(
        cpu.starts_with("/sys/fs/cgroup/cpu ro,nosuid,nodev,noexec"),
        "{cpu}"
    );
    assert!(cpu.contains(" cgroup "), "{cpu}");
}

fn prepare_error(rootfs: &Path, spec: &Spec) -> String {
    in_child(|| match prepare(spec, rootfs, OPTIONS) {
        Ok(_) => Ok("prepared".to_string()),
        Err(e) => Err(e.to_string()),
    })
    .expect_err("prepare should fail")
}

fn tmpfs_at(destination: &str) -> Spec {
    spec_from(serde_json::json!({
        "ociVersion": "1.0.2",
        "mounts": [{"destination": destination, "type": "tmpfs", "source": "tmpfs"}]
    }))
}

#[test]
fn destination_symlink_escape_rejected() {
    if !is_root() {
        return;
    }
    let (dir, rootfs) = busybox_rootfs();
    symlink("../../outside", rootfs.join("escape")).unwrap();
    let error = prepare_error(&rootfs, &tmpfs_at("/escape/x"));
    assert_eq!(
        error,
        "mount destination \"/escape/x\": symlink \"/escape\" leads out of the rootfs"
    );
    assert!(!dir.path().join("outside/x").exists());
}

#[test]
fn absolute_symlink_resolved_inside_rootfs() {
    if !is_root() {
        return;
    }
    let (dir, rootfs) = busybox_rootfs();
    symlink("/run", rootfs.join("var/run")).unwrap();
    symlink("/", rootfs.join("etc/top")).unwrap();
    let spec = tmpfs_at("/var/run/lock");
    let rootfs_in_child = rootfs.clone();
    let output = in_child(|| {
        prepare(&spec, &rootfs_in_child, OPTIONS).map_err(|e| e.to_string())?;
        Ok(table_text(&mount_table()?))
    })
    .expect("prepare");
    let expected = format!("{}/run/lock", rootfs.display());
    assert!(
        find(&output, &expected).is_some(),
        "no tmpfs at {expected}: {output}"
    );
    assert!(rootfs.join("run/lock").is_dir());
    assert!(!dir.path().join("run").exists());
}

#[test]
fn proc_on_symlink_rejected() {
    if !is_root() {
        return;
    }
    let (_dir, rootfs) = busybox_rootfs();
    fs::remove_dir(rootfs.join("proc")).unwrap();
    symlink("/tmp", rootfs.join("proc")).unwrap();
    let spec = spec_from(serde_json::json!({
        "ociVersion": "1.0.2",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]
    }));
    let error = prepare_error(&rootfs, &spec);
    assert_eq!(
        error,
        "mount destination \"/proc\": proc must be mounted on a directory, not a symlink"
    );
}

#[test]
fn relative_destination_rejected() {
    if !is_root() {
        return;
    }
    let (_dir, rootfs) = busybox_rootfs();
    let error = prepare_error(&rootfs, &tmpfs_at("tmp"));
    assert_eq!(error, "mount destination \"tmp\" is not absolute");
}

#[test]
fn bind_mounts_with_flags() {
    if !is_root() {
        return;
    }
    let (dir, rootfs) = busybox_rootfs();
    let host_file = dir.path().join("hostname");
    fs::write(&host_file, "box\n").unwrap();
    let host_dir = dir.path().join("data");
    fs::create_dir_all(&host_dir).unwrap();
    let spec = spec_from(serde_json::json!({
        "ociVersion": "1.0.2",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/etc/hostname", "type": "bind", "source": host_file,
             "options": ["ro", "nosuid"]},
            {"destination": "/data", "source": host_dir, "options": ["rbind", "nodev", "noexec", "private"]}
        ]
    }));
    let output = in_child(|| {
        let prepared = prepare(&spec, &rootfs, OPTIONS).map_err(|e| e.to_string())?;
        enter_and_finalize_for_test(prepared, &spec, OPTIONS)?;
        let mut text = table_text(&mount_table()?);
        text += &format!(
            "hostname {}",
            fs::read_to_string("/etc/hostname").map_err(|e| e.to_string())?
        );
        let write = fs::write("/etc/hostname", "changed");
        text += &format!("write-ok {}\n", write.is_ok());
        Ok(text)
    })
    .expect("container set-up");
    let hostname = find(&output, "/etc/hostname").expect("hostname bind");
    assert!(
        hostname.starts_with("/etc/hostname ro,nosuid"),
        "{hostname}"
    );
    let data = find(&output, "/data").expect("data bind");
    assert!(data.starts_with("/data rw,nodev,noexec"), "{data}");
    assert!(output.contains("hostname box"), "{output}");
    assert!(output.contains("write-ok false"), "{output}");
    assert_eq!(fs::read_to_string(&host_file).unwrap(), "box\n");
}

#[test]
fn spec_devices_created() {
    if !is_root() {
        return;
    }
    let (_dir, rootfs) = busybox_rootfs();
    let spec = spec_from(serde_json::json!({
        "ociVersion": "1.0.2",
        "mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]}],
        "linux": {"devices": [
            {"path": "/dev/myzero", "type": "c", "major": 1, "minor": 5,
             "fileMode": 384, "uid": 1000, "gid": 1001},
            {"path": "/dev/sub/fifo", "type": "p", "major": 0, "minor": 0}
        ]}
    }));
    let output = in_child(|| {
        let prepared = prepare(&spec, &rootfs, OPTIONS).map_err(|e| e.to_string())?;
        enter_and_finalize_for_test(prepared, &spec, OPTIONS)?;
        let zero = fs::metadata("/dev/myzero").map_err(|e| e.to_string())?;
        let fifo = fs::metadata("/dev/sub/fifo").map_err(|e| e.to_string())?;
        let tty = fs::metadata("/dev/tty").map_err(|e| e.to_string())?;
        Ok(format!(
            "zero {} {:x} {:o} {}:{}\nfifo {} {:o}\ntty {:x}\n",
            zero.file_type().is_char_device(),
            zero.rdev(),
            zero.mode() & 0o7777,
            zero.uid(),
            zero.gid(),
            fifo.file_type().is_fifo(),
            fifo.mode() & 0o7777,
            tty.rdev()
        ))
    })
    .expect("container set-up");
    assert!(output.contains("zero true 105 600 1000:1001"), "{output}");
    assert!(output.contains("fifo true 666"), "{output}");
    assert!(output.contains("tty 500"), "{output}");
}

#[test]
fn user_namespace_binds_host_devices() {
    if !is_root() {
        return;
    }
    let (_dir, rootfs) = busybox_rootfs();
    let spec = spec_from(serde_json::json!({
        "ociVersion": "1.0.2",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}
        ]
    }));
    let options = Options {
        user_namespace: true,
        ..OPTIONS
    };
    let host_null_mode = fs::metadata("/dev/null").unwrap().mode();
    let output = in_child(|| {
        let prepared = prepare(&spec, &rootfs, options).map_err(|e| e.to_string())?;
        enter_and_finalize_for_test(prepared, &spec, options)?;
        Ok(table_text(&mount_table()?))
    })
    .expect("container set-up");
    assert!(
        find(&output, "/dev/null").is_some(),
        "/dev/null not a bind mount: {output}"
    );
    assert!(find(&output, "/dev/urandom").is_some(), "{output}");
    assert_eq!(fs::metadata("/dev/null").unwrap().mode(), host_null_mode);
}

#[test]
fn no_pivot_moves_rootfs() {
    if !is_root() {
        return;
    }
    let (_dir, rootfs) = busybox_rootfs();
    let spec = tmpfs_at("/tmp");
    let options = Options {
        no_pivot: true,
        ..OPTIONS
    };
    let output = in_child(|| {
        let prepared = prepare(&spec, &rootfs, options).map_err(|e| e.to_string())?;
        enter_and_finalize_for_test(prepared, &spec, options)?;
        let marker = fs::read_to_string("/etc/marker").map_err(|e| e.to_string())?;
        let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
        Ok(format!("marker {marker}\ncwd {}\n", cwd.display()))
    })
    .expect("container set-up");
    assert!(output.contains("marker inside"), "{output}");
    assert!(output.contains("cwd /\n"), "{output}");
}

#[test]
fn without_mount_namespace_only_chroots() {
    if !is_root() {
        return;
    }
    let (_dir, rootfs) = busybox_rootfs();
    let spec = runc_default_spec();
    let options = Options {
        new_mount_namespace: false,
        ..OPTIONS
    };
    let before = table_text(&mount_table().unwrap()).lines().count();
    let output = in_child(|| {
        let prepared = prepare(&spec, &rootfs, options).map_err(|e| e.to_string())?;
        let count = table_text(&mount_table()?).lines().count();
        enter_and_finalize_for_test(prepared, &spec, options)?;
        let marker = fs::read_to_string("/etc/marker").map_err(|e| e.to_string())?;
        Ok(format!("mounts {count}\nmarker {marker}\n"))
    })
    .expect("chroot");
    assert!(output.contains(&format!("mounts {before}\n")), "{output}");
    assert!(output.contains("marker inside"), "{output}");
    assert!(fs::read_dir(rootfs.join("dev")).unwrap().next().is_none());
}

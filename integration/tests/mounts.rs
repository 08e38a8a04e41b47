//! Mounts, devices, masked and read-only paths inside the container.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use hull_integration::{require_root, run_and_compare, Bundle};
use serde_json::json;

/// Prints mount point, per-mount options, file system type and super
/// options of every mount: the fields that do not change between runs.
const MOUNTINFO: &str = r#"awk '{ for (i = 7; i <= NF; i++) if ($i == "-") s = i; print $5, $6, $(s + 1), $(s + 3) }' /proc/self/mountinfo"#;

/// A tmpfs mounted on the host for the duration of a test.
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs(target: &Path) -> HostMount {
        fs::create_dir_all(target).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "hulltest"])
            .arg(target)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount tmpfs on {} failed",
            target.display()
        );
        HostMount(target.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Returns the line of `mountinfo` (in the [`MOUNTINFO`] format) for `point`.
fn mount_line<'a>(mountinfo: &'a str, point: &str) -> &'a str {
    mountinfo
        .lines()
        .find(|l| l.split(' ').next() == Some(point))
        .unwrap_or_else(|| panic!("no mount at {point} in:\n{mountinfo}"))
}

#[test]
fn default_mounts_match_runc() {
    require_root!();
    let bundle = Bundle::busybox_sh(MOUNTINFO);
    let output = run_and_compare("default mountinfo", &bundle);
    let info = &output.stdout;
    assert!(mount_line(info, "/").contains(" ro,"), "{info}");
    assert!(mount_line(info, "/proc").contains(" proc "), "{info}");
    assert!(
        mount_line(info, "/dev").contains("tmpfs rw,size=65536k,mode=755"),
        "{info}"
    );
    assert!(mount_line(info, "/dev/pts").contains(" devpts "), "{info}");
    assert!(
        mount_line(info, "/dev/shm").contains("nosuid,nodev,noexec"),
        "{info}"
    );
    assert!(
        mount_line(info, "/dev/mqueue").contains(" mqueue "),
        "{info}"
    );
    assert!(mount_line(info, "/sys").starts_with("/sys ro,"), "{info}");
}

#[test]
fn user_mounts_match_runc() {
    require_root!();
    let host_dir = tempfile::tempdir().unwrap();
    fs::write(host_dir.path().join("file"), "from host\n").unwrap();
    let nested = HostMount::tmpfs(&host_dir.path().join("sub"));
    fs::write(nested.0.join("inner"), "nested\n").unwrap();
    let source = host_dir.path().to_str().unwrap();

    let script = format!("{MOUNTINFO}; cat /mnt/bind/file /mnt/rbind/sub/inner; ls /mnt/bind/sub; touch /mnt/bind/x 2>/dev/null || echo bind is read-only");
    let mut bundle = Bundle::busybox_sh(&script);
    bundle
        .add_mount(json!({
            "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
            "options": ["size=1m", "mode=755"]
        }))
        .add_mount(json!({
            "destination": "/mnt/bind", "type": "bind", "source": source,
            "options": ["bind", "ro", "nosuid"]
        }))
        .add_mount(json!({
            "destination": "/mnt/rbind", "type": "bind", "source": source,
            "options": ["rbind", "rw"]
        }))
        .add_mount(json!({
            "destination": "/mnt/tmp", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "size=2m", "mode=1770"]
        }))
        .add_mount(json!({
            "destination": "/mnt/sysfs", "type": "sysfs", "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"]
        }))
        .add_mount(json!({
            "destination": "/mnt/proc", "type": "proc", "source": "proc"
        }));
    let output = run_and_compare("user mounts", &bundle);
    let info = &output.stdout;
    assert!(
        mount_line(info, "/mnt").contains("tmpfs rw,size=1024k,mode=755"),
        "{info}"
    );
    assert!(
        mount_line(info, "/mnt/bind").starts_with("/mnt/bind ro,nosuid"),
        "{info}"
    );
    assert!(
        mount_line(info, "/mnt/rbind").starts_with("/mnt/rbind rw"),
        "{info}"
    );
    assert!(
        mount_line(info, "/mnt/rbind/sub").contains(" tmpfs "),
        "{info}"
    );
    let tmp = mount_line(info, "/mnt/tmp");
    assert!(tmp.contains("nosuid,nodev,noexec"), "{tmp}");
    assert!(tmp.contains("size=2048k,mode=1770"), "{tmp}");
    assert!(mount_line(info, "/mnt/sysfs").contains(" sysfs "), "{info}");
    assert!(mount_line(info, "/mnt/proc").contains(" proc "), "{info}");
    // A plain bind does not carry the submount along.
    assert!(
        !info.lines().any(|l| l.starts_with("/mnt/bind/sub ")),
        "{info}"
    );
    assert!(
        info.ends_with("from host\nnested\nbind is read-only\n"),
        "{info}"
    );
}

#[test]
fn cgroup_mount_matches_runc() {
    require_root!();
    let bundle = Bundle::busybox_sh(&format!(
        "{MOUNTINFO} | grep /sys/fs/cgroup; ls /sys/fs/cgroup"
    ));
    let output = run_and_compare("cgroup mount", &bundle);
    assert!(output.stdout.contains("/sys/fs/cgroup"), "{output}");
}

#[test]
fn default_devices_match_runc() {
    require_root!();
    let script = r#"for f in /dev/* /dev/pts/ptmx; do
        if [ -L "$f" ]; then echo "$f -> $(readlink "$f")";
        else stat -c '%n %F %t:%T %a %u:%g' "$f"; fi; done"#;
    let bundle = Bundle::busybox_sh(script);
    let output = run_and_compare("default devices", &bundle);
    let devices = &output.stdout;
    for expected in [
        "/dev/null character special file 1:3 666 0:0",
        "/dev/zero character special file 1:5 666 0:0",
        "/dev/full character special file 1:7 666 0:0",
        "/dev/random character special file 1:8 666 0:0",
        "/dev/urandom character special file 1:9 666 0:0",
        "/dev/tty character special file 5:0 666 0:0",
        "/dev/fd -> /proc/self/fd",
        "/dev/stdin -> /proc/self/fd/0",
        "/dev/stdout -> /proc/self/fd/1",
        "/dev/stderr -> /proc/self/fd/2",
        "/dev/ptmx -> pts/ptmx",
    ] {
        assert!(
            devices.lines().any(|l| l == expected),
            "missing {expected:?} in:\n{devices}"
        );
    }
}

#[test]
fn linux_devices_created() {
    require_root!();
    let script = "stat -c '%n %F %t:%T %a %u:%g' /dev/hull-null /dev/hull-zero; echo data > /dev/hull-zero && echo written";
    let mut bundle = Bundle::busybox_sh(script);
    bundle.config["linux"]["devices"] = json!([
        { "path": "/dev/hull-null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 1000, "gid": 1000 },
        { "path": "/dev/hull-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600 }
    ]);
    bundle.config["linux"]["resources"]["devices"] = json!([
        { "allow": false, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" },
        { "allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm" }
    ]);
    let output = run_and_compare("linux.devices", &bundle);
    assert_eq!(
        output.stdout,
        "/dev/hull-null character special file 1:3 640 1000:1000\n\
         /dev/hull-zero character special file 1:5 600 0:0\n\
         written\n",
        "{output}"
    );
}

#[test]
fn masked_and_readonly_paths() {
    require_root!();
    // /proc/keys and /proc/timer_list exist on every kernel with procfs;
    // /proc/kcore and /proc/sysrq-trigger depend on the kernel's options.
    let script = "wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; \
        echo x > /proc/keys 2>/dev/null || echo proc/keys read-only; \
        touch /proc/sys/kernel/x 2>/dev/null || echo proc/sys read-only; \
        touch /tmp/x 2>/dev/null || echo rootfs read-only";
    let mut bundle = Bundle::busybox_sh(script);
    bundle.config["linux"]["maskedPaths"] =
        json!(["/proc/timer_list", "/sys/firmware", "/no/such/path"]);
    bundle.config["linux"]["readonlyPaths"] = json!(["/proc/keys", "/proc/sys", "/no/such/path"]);
    let output = run_and_compare("masked paths", &bundle);
    assert_eq!(
        output.stdout, "0\n0\nproc/keys read-only\nproc/sys read-only\nrootfs read-only\n",
        "{output}"
    );
}

#[test]
fn writable_rootfs_copy() {
    require_root!();
    let mut bundle = Bundle::new(
        hull_integration::Rootfs::BusyboxCopy,
        &["sh", "-c", "echo new > /tmp/written && cat /tmp/written"],
    );
    bundle.config["root"]["path"] = json!("rootfs");
    let output = run_and_compare("writable rootfs", &bundle);
    assert_eq!(output.stdout, "new\n", "{output}");
}

#[test]
fn tmpfs_mode_on_existing_directory() {
    require_root!();
    let hull = hull_integration::Runtime::hull();
    let mut bundle = Bundle::new(
        hull_integration::Rootfs::BusyboxCopy,
        &["stat", "-c", "%a", "/tmp/test"],
    );
    let mount_point = bundle.rootfs().join("tmp/test");
    fs::create_dir(&mount_point).unwrap();
    fs::set_permissions(
        &mount_point,
        std::os::unix::fs::PermissionsExt::from_mode(0o710),
    )
    .unwrap();
    bundle.add_mount(json!({
        "destination": "/tmp/test", "type": "tmpfs", "source": "tmpfs", "options": ["mode=0444"]
    }));

    let with_mode = hull.run(&hull_integration::unique_id("tmpfs-mode"), &bundle);
    with_mode.expect_success();
    assert_eq!(with_mode.stdout, "444\n", "{with_mode}");

    bundle.config["mounts"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap()["options"] = json!([]);
    let without_mode = hull.run(&hull_integration::unique_id("tmpfs-mode"), &bundle);
    without_mode.expect_success();
    assert_eq!(without_mode.stdout, "710\n", "{without_mode}");
}

#[test]
fn tmpcopyup_copies_destination() {
    require_root!();
    let hull = hull_integration::Runtime::hull();
    let script = "ls -ld /dir1/dir2 | cut -c1-10; cat /dir1/file; readlink /dir1/link; \
        stat -c %u:%g /dir1/file; touch /dir1/made-inside";
    let mut bundle = Bundle::new(hull_integration::Rootfs::BusyboxCopy, &["sh", "-c", script]);
    let dir1 = bundle.rootfs().join("dir1");
    fs::create_dir_all(dir1.join("dir2")).unwrap();
    fs::set_permissions(
        dir1.join("dir2"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    fs::write(dir1.join("file"), "content\n").unwrap();
    std::os::unix::fs::chown(dir1.join("file"), Some(1000), Some(1001)).unwrap();
    std::os::unix::fs::symlink("file", dir1.join("link")).unwrap();
    bundle.add_mount(json!({
        "destination": "/dir1", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]
    }));

    let output = hull.run(&hull_integration::unique_id("tmpcopyup"), &bundle);

    output.expect_success();
    assert_eq!(
        output.stdout, "drwxrwxrwx\ncontent\nfile\n1000:1001\n",
        "{output}"
    );
    // The file made inside went to the tmpfs, not to the rootfs.
    assert!(!dir1.join("made-inside").exists());
}

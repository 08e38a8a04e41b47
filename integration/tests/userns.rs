//! User and time namespaces, and the process attributes of the spec:
//! scheduler, I/O priority, personality.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use hull_integration::{fixtures, require_root, run_and_compare, unique_id, Bundle, Runtime};
use serde_json::json;

/// First host id of the range mapped to the container's ids 0 to 65535.
const HOST_BASE: u32 = 200000;

/// Returns true when `text` has the id map line `0 HOST_BASE 65536`.
fn has_full_map(text: &str) -> bool {
    let expected = ["0".to_string(), HOST_BASE.to_string(), "65536".to_string()];
    text.lines().any(|line| {
        line.split_whitespace()
            .eq(expected.iter().map(String::as_str))
    })
}

/// Builds a busybox bundle in a user namespace, on a private rootfs copy owned
/// by the mapped ids; the directory holding the copy is returned too.
fn userns_bundle(args: &[&str]) -> (Bundle, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("hull-userns-")
        .tempdir()
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    // A real copy: the fixture's inodes must keep their owners.
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixtures::busybox_rootfs())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("chown")
        .args(["-R", &format!("{HOST_BASE}:{HOST_BASE}")])
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success());
    let mut bundle = Bundle::busybox(args);
    bundle.config["root"] = json!({ "path": rootfs, "readonly": false });
    let map = json!([{ "containerID": 0, "hostID": HOST_BASE, "size": 65536 }]);
    bundle.config["linux"]["uidMappings"] = map.clone();
    bundle.config["linux"]["gidMappings"] = map;
    bundle.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "user" }));
    (bundle, dir)
}

#[test]
fn userns_files_owned_by_mapped_ids() {
    require_root!();
    let script = "id; cat /proc/self/uid_map /proc/self/gid_map; ls -ln /bin/busybox; \
        touch /tmp/made-inside; ls -ln /tmp/made-inside; grep -E '^Cap(Eff|Bnd)' /proc/self/status";
    let (bundle, dir) = userns_bundle(&["sh", "-c", script]);
    let output = run_and_compare("userns", &bundle);
    assert!(
        output.stdout.starts_with("uid=0(root) gid=0(root)\n"),
        "{output}"
    );
    assert!(has_full_map(&output.stdout), "{output}");
    assert!(output.stdout.contains(" 0        0 "), "{output}");
    // On the host the file made inside belongs to the mapped root.
    let meta = std::fs::metadata(dir.path().join("rootfs/tmp/made-inside")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), HOST_BASE);
    assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), HOST_BASE);
}

#[test]
fn userns_process_user_and_devices() {
    require_root!();
    let (mut bundle, _dir) = userns_bundle(&[
        "sh",
        "-c",
        "id; ls -ln /dev/null; echo x > /dev/null && echo written",
    ]);
    bundle.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    let output = run_and_compare("userns user", &bundle);
    assert!(output.stdout.starts_with("uid=1000"), "{output}");
    assert!(output.stdout.ends_with("written\n"), "{output}");
}

#[test]
fn userns_exec_joins_the_user_namespace() {
    require_root!();
    let runtime = Runtime::hull();
    let (mut bundle, _dir) = userns_bundle(&["sleep", "600"]);
    bundle.config["process"]["terminal"] = json!(false);
    let id = unique_id("userns");
    runtime.run_detached(&id, &bundle).expect_success();
    let output = runtime.exec(&["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    output.expect_success();
    assert!(output.stdout.starts_with("0\n"), "{output}");
    assert!(has_full_map(&output.stdout), "{output}");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn userns_binds_root_only_sources() {
    require_root!();
    let (mut bundle, dir) =
        userns_bundle(&["sh", "-c", "cat /mnt/plain/foo.txt /mnt/recursive/foo.txt"]);
    // Only host root may enter `private`; the mapped root may not.
    let private = dir.path().join("private");
    for name in ["plain", "recursive"] {
        std::fs::create_dir_all(private.join(name)).unwrap();
        std::fs::write(private.join(name).join("foo.txt"), format!("{name}\n")).unwrap();
    }
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    bundle.add_mount(json!({
        "destination": "/mnt/plain", "type": "bind",
        "source": private.join("plain"), "options": ["bind", "ro"]
    }));
    bundle.add_mount(json!({
        "destination": "/mnt/recursive", "type": "bind",
        "source": private.join("recursive"), "options": ["rbind"]
    }));

    let output = Runtime::hull().run(&unique_id("userns-private"), &bundle);

    output.expect_success();
    assert_eq!(output.stdout, "plain\nrecursive\n", "{output}");
}

#[test]
fn userns_without_mappings_is_rejected() {
    require_root!();
    let runtime = Runtime::hull();
    let (mut bundle, _dir) = userns_bundle(&["true"]);
    bundle.config["linux"]["uidMappings"] = json!([]);
    let id = unique_id("nomap");
    let output = runtime.create(&id, &bundle);
    output.expect_code(1);
    assert!(output.stderr.contains("uidMappings"), "{output}");
    assert!(!runtime.state_dir(&id).exists());
}

#[test]
fn time_namespace_offsets() {
    require_root!();
    let mut bundle = Bundle::busybox(&["cat", "/proc/uptime"]);
    bundle.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "time" }));
    bundle.config["linux"]["timeOffsets"] = json!({ "boottime": { "secs": 864000 } });
    let runtime = Runtime::hull();
    let output = runtime.run(&unique_id("timens"), &bundle);
    output.expect_success();
    let inside: f64 = output
        .stdout
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let host: f64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(inside - host > 863000.0, "inside {inside}, host {host}");
}

#[test]
fn personality_and_scheduler() {
    require_root!();
    let mut bundle = Bundle::busybox_sh(
        "uname -m; grep -m1 '^policy' /proc/self/sched; cut -d' ' -f19 /proc/self/stat",
    );
    bundle.config["linux"]["personality"] = json!({ "domain": "LINUX32" });
    bundle.config["process"]["scheduler"] = json!({ "policy": "SCHED_BATCH", "nice": 5 });
    let output = Runtime::hull().run(&unique_id("attrs"), &bundle);
    output.expect_success();
    let lines: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(lines[0], "i686", "{output}");
    assert!(
        lines[1].ends_with(" 3"),
        "SCHED_BATCH is policy 3: {output}"
    );
    assert_eq!(lines[2], "5", "{output}");
}

#[test]
fn io_priority_is_applied() {
    require_root!();
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sleep", "600"]);
    bundle.config["process"]["ioPriority"] = json!({ "class": "IOPRIO_CLASS_IDLE", "priority": 0 });
    let id = unique_id("ioprio");
    runtime.run_detached(&id, &bundle).expect_success();
    let pid = runtime.state_json(&id)["pid"].to_string();
    let output = Command::new("ionice").args(["-p", &pid]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "idle");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn invalid_attributes_are_rejected() {
    require_root!();
    let runtime = Runtime::hull();
    for (field, value, named) in [
        (
            "scheduler",
            json!({ "policy": "SCHED_FIFO", "priority": 0 }),
            "priority 0",
        ),
        (
            "ioPriority",
            json!({ "class": "IOPRIO_CLASS_BE", "priority": 9 }),
            "priority 9",
        ),
    ] {
        let mut bundle = Bundle::busybox(&["true"]);
        bundle.config["process"][field] = value;
        let id = unique_id("badattr");
        let output = runtime.create(&id, &bundle);
        output.expect_code(1);
        assert!(output.stderr.contains(named), "{field}: {output}");
    }
    let mut bundle = Bundle::busybox(&["true"]);
    bundle.config["linux"]["intelRdt"] = json!({ "l3CacheSchema": "L3:0=ff" });
    let output = runtime.create(&unique_id("rdt"), &bundle);
    output.expect_code(1);
    assert!(output.stderr.contains("intelRdt"), "{output}");
}

#[test]
fn userns_init_joins_the_cgroup() {
    require_root!();
    let runtime = Runtime::hull();
    let path = format!("/{}", unique_id("hull-userns-cg"));
    let (mut bundle, _dir) = userns_bundle(&["sleep", "600"]);
    bundle.config["linux"]["cgroupsPath"] = json!(path);
    let id = unique_id("userns-cg");
    runtime.create(&id, &bundle).expect_success();
    let pid = runtime.state_json(&id)["pid"].as_i64().unwrap();
    hull_integration::host::assert_in_cgroup(pid, &path);
    runtime.delete_force(&id).expect_success();
}

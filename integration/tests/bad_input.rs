//! Invalid configurations: each fails `create` with exit code 1 and one
//! error line that names the bad value, and leaves nothing behind.
//!
//! Where runc 1.1.5 accepts the input, the test states it; those tests
//! check hull only and fail when `HULL` points at runc.

use std::fs;
use std::os::unix::fs::symlink;

use hull_integration::host::{cgroup_dirs, mounts_mentioning, processes_rooted_in};
use hull_integration::{require_root, unique_id, Bundle, Rootfs, Runtime};
use serde_json::json;

/// Returns a bundle with its own writable copy of the busybox rootfs, so
/// that the leftover checks see only this test's processes.
fn own_bundle() -> Bundle {
    let mut bundle = Bundle::new(Rootfs::BusyboxCopy, &["true"]);
    bundle.config["root"]["path"] = json!("rootfs");
    bundle
}

/// Runs `create` on hull and checks the failure and the cleanup.
#[track_caller]
fn assert_rejected(runtime: &Runtime, id: &str, bundle: &Bundle, value: &str) {
    let output = runtime.create(id, bundle);
    assert_eq!(output.code, Some(1), "create was not rejected:\n{output}");
    let lines = output.stderr_lines();
    assert_eq!(lines.len(), 1, "expected one error line:\n{output}");
    assert!(
        lines[0].contains(value),
        "the error does not name {value:?}:\n{output}"
    );
    assert!(
        !runtime.state_dir(id).exists(),
        "state directory left for {id}"
    );
    assert!(
        cgroup_dirs(id).is_empty(),
        "cgroups left: {:?}",
        cgroup_dirs(id)
    );
    assert!(
        mounts_mentioning(bundle.path()).is_empty(),
        "mounts left: {:?}",
        mounts_mentioning(bundle.path())
    );
    let rootfs = bundle.path().join("rootfs");
    assert!(
        processes_rooted_in(&rootfs).is_empty(),
        "processes left in {}: {:?}",
        rootfs.display(),
        processes_rooted_in(&rootfs)
    );
    runtime.state(id).expect_code(1);
}

#[test]
fn malformed_json() {
    require_root!();
    // runc 1.1.5 rejects it with "unexpected EOF", naming no file.
    let mut bundle = own_bundle();
    bundle.set_raw_config("{ \"ociVersion\": \"1.0.2\", \"process\": ");
    assert_rejected(
        &Runtime::hull(),
        &unique_id("badjson"),
        &bundle,
        "config.json",
    );
}

#[test]
fn unsupported_oci_version() {
    require_root!();
    // runc 1.1.5 accepts any ociVersion.
    for version in ["0.1.0", "2.0.0"] {
        let mut bundle = own_bundle();
        bundle.config["ociVersion"] = json!(version);
        assert_rejected(&Runtime::hull(), &unique_id("badversion"), &bundle, version);
    }
}

#[test]
fn missing_rootfs() {
    require_root!();
    let mut bundle = own_bundle();
    bundle.config["root"]["path"] = json!("/no/such/rootfs");
    assert_rejected(
        &Runtime::hull(),
        &unique_id("norootfs"),
        &bundle,
        "/no/such/rootfs",
    );
}

#[test]
fn id_in_use() {
    require_root!();
    // runc 1.1.5 rejects it with "container with given ID already exists",
    // naming no ID.
    let runtime = Runtime::hull();
    let id = unique_id("dupid");
    let first = Bundle::busybox(&["sleep", "1000"]);
    runtime.create(&id, &first).expect_success();
    let output = runtime.create(&id, &own_bundle());
    output.expect_code(1);
    assert_eq!(output.stderr_lines().len(), 1, "{output}");
    assert!(output.stderr.contains(&id), "{output}");
    // The first container is untouched.
    assert_eq!(runtime.status(&id), "created");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn id_with_parent_component() {
    require_root!();
    // runc 1.1.5 rejects these with "invalid container ID format", naming
    // no ID.
    let runtime = Runtime::hull();
    let escape = format!("hull-escape-{}", std::process::id());
    for id in [
        format!("../{escape}"),
        format!("a/../../{escape}"),
        "..".to_owned(),
    ] {
        let output = runtime.create(&id, &own_bundle());
        output.expect_code(1);
        assert_eq!(output.stderr_lines().len(), 1, "{output}");
        assert!(output.stderr.contains(&id), "{output}");
        let outside = runtime.root().parent().unwrap().join(&escape);
        assert!(!outside.exists(), "{} was created", outside.display());
    }
}

#[test]
fn mount_destination_symlink_escape() {
    require_root!();
    // runc 1.1.5 resolves the link inside the rootfs and mounts there.
    let bundle_dir_escape = format!("hull-outside-{}", std::process::id());
    let mut bundle = own_bundle();
    let link = bundle.path().join("rootfs/escape");
    symlink(format!("../../../../{bundle_dir_escape}"), &link).unwrap();
    bundle.add_mount(json!({
        "destination": "/escape", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
    }));
    assert_rejected(
        &Runtime::hull(),
        &unique_id("symescape"),
        &bundle,
        "/escape",
    );
    assert!(!std::path::Path::new("/").join(&bundle_dir_escape).exists());
}

#[test]
fn proc_is_symlink() {
    require_root!();
    let mut bundle = own_bundle();
    let proc_dir = bundle.path().join("rootfs/proc");
    fs::remove_dir(&proc_dir).unwrap();
    symlink("/tmp", &proc_dir).unwrap();
    bundle.config["process"]["args"] = json!(["true"]);
    assert_rejected(&Runtime::hull(), &unique_id("procsym"), &bundle, "/proc");
}

#[test]
fn missing_hook_binary() {
    require_root!();
    for kind in ["prestart", "createRuntime"] {
        let mut bundle = own_bundle();
        bundle.config["hooks"] = json!({ kind: [{ "path": "/no/such/hook" }] });
        assert_rejected(
            &Runtime::hull(),
            &unique_id("nohook"),
            &bundle,
            "/no/such/hook",
        );
    }
}

#[test]
fn cwd_is_regular_file() {
    require_root!();
    let mut bundle = own_bundle();
    bundle.config["process"]["cwd"] = json!("/etc/passwd");
    assert_rejected(
        &Runtime::hull(),
        &unique_id("cwdfile"),
        &bundle,
        "/etc/passwd",
    );
}

#[test]
fn unknown_seccomp_syscall() {
    require_root!();
    // runc 1.1.5 skips syscall names that libseccomp does not know.
    let mut bundle = own_bundle();
    bundle.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{ "names": ["no_such_syscall"], "action": "SCMP_ACT_ERRNO" }]
    });
    assert_rejected(
        &Runtime::hull(),
        &unique_id("badsyscall"),
        &bundle,
        "no_such_syscall",
    );
}

#[test]
fn unknown_capability() {
    require_root!();
    // runc 1.1.5 logs a warning for an unknown capability and ignores it.
    let mut bundle = own_bundle();
    bundle.config["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_NO_SUCH_THING"]);
    assert_rejected(
        &Runtime::hull(),
        &unique_id("badcap"),
        &bundle,
        "CAP_NO_SUCH_THING",
    );
}

#[test]
fn relative_mount_destination_outside_rootfs() {
    require_root!();
    // runc 1.1.5 resolves `..` in a destination inside the rootfs and runs
    // the container; hull must do the same and create nothing on the host.
    let mut bundle = own_bundle();
    bundle.set_args(&[
        "sh",
        "-c",
        "grep -c ' /hull-dest-escape ' /proc/self/mountinfo",
    ]);
    bundle.add_mount(json!({
        "destination": "/../../../../hull-dest-escape", "type": "tmpfs", "source": "tmpfs"
    }));
    let (hull, runc) = hull_integration::run_on_both(&bundle);
    hull_integration::assert_same_output("destination with ..", &hull, &runc);
    assert_eq!(hull.stdout, "1\n", "{hull}");
    assert!(!std::path::Path::new("/hull-dest-escape").exists());
}

#[test]
fn systemd_cgroup_without_systemd() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["true"]);
    bundle.write();
    let id = unique_id("systemd");
    let bundle_path = bundle.path().to_str().unwrap().to_owned();
    let output = runtime.exec(&["--systemd-cgroup", "create", "--bundle", &bundle_path, &id]);
    output.expect_code(1);
    assert!(output.stderr.contains("--systemd-cgroup"), "{output}");
    assert!(!runtime.state_dir(&id).exists());

    let mut bundle = Bundle::busybox(&["true"]);
    bundle.config["linux"]["cgroupsPath"] = json!("/not/a/systemd/path");
    bundle.write();
    let id = unique_id("systemd");
    let bundle_path = bundle.path().to_str().unwrap().to_owned();
    let output = runtime.exec(&["--systemd-cgroup", "create", "--bundle", &bundle_path, &id]);
    output.expect_code(1);
    assert!(output.stderr.contains("/not/a/systemd/path"), "{output}");
    assert!(output.stderr.contains("slice:prefix:name"), "{output}");
}

#[test]
fn user_id_out_of_range() {
    require_root!();
    let runtime = Runtime::hull();
    for id_value in [4294967295u64, 3000000000] {
        let mut bundle = own_bundle();
        bundle.config["process"]["user"] = json!({ "uid": id_value, "gid": 0 });
        let id = unique_id("uid");
        assert_rejected(&runtime, &id, &bundle, &id_value.to_string());
    }
}

#[test]
fn memory_limit_too_low_for_the_init() {
    require_root!();
    let runtime = Runtime::hull();
    let mut bundle = own_bundle();
    bundle.config["linux"]["resources"] = json!({ "memory": { "limit": 4096 } });
    let id = unique_id("oom");
    assert_rejected(&runtime, &id, &bundle, "4096");
}

#[test]
fn state_root_that_is_a_file() {
    require_root!();
    let runtime = Runtime::hull();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, "").unwrap();
    let bundle = Bundle::busybox(&["true"]);
    bundle.write();
    let output = runtime.exec_without_root(&[
        "--root",
        file.to_str().unwrap(),
        "create",
        "--bundle",
        bundle.path().to_str().unwrap(),
        &unique_id("rootfile"),
    ]);
    output.expect_code(1);
    assert!(output.stderr.contains("not a directory"), "{output}");
    let list = runtime.exec_without_root(&["--root", file.to_str().unwrap(), "list"]);
    list.expect_code(1);
    assert!(list.stderr.contains("not a directory"), "{list}");
}

//! update: new limits in the cgroup files, in `events --stats` and in a
//! later update; the CFS quota and period rule; stdin input; errors.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use hull_integration::host::cgroup_dirs;
use hull_integration::{require_root, unique_id, Bundle, Output, Runtime};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// Returns the container's cgroup directory in the v1 hierarchy of
/// `controller`.
fn cgroup_dir(id: &str, controller: &str) -> PathBuf {
    let root = PathBuf::from("/sys/fs/cgroup").join(controller);
    cgroup_dirs(id)
        .into_iter()
        .find(|dir| dir.starts_with(&root))
        .unwrap_or_else(|| panic!("no {controller} cgroup for {id}"))
}

fn read_cgroup(id: &str, controller: &str, file: &str) -> String {
    let path = cgroup_dir(id, controller).join(file);
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn stats(runtime: &Runtime, id: &str) -> Value {
    let output = runtime.exec(&["events", "--stats", id]);
    output.expect_success();
    let event: Value = serde_json::from_str(output.stdout.trim()).expect("invalid event JSON");
    event["data"].clone()
}

fn running(runtime: &Runtime, bundle: &Bundle, prefix: &str) -> String {
    let id = unique_id(prefix);
    runtime.run_detached(&id, bundle).expect_success();
    id
}

/// Runs `RUNTIME update ARGS... ID` with `input` on standard input.
fn update_with_stdin(runtime: &Runtime, args: &[&str], input: &str) -> Output {
    let mut cmd = runtime.command(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("failed to start update");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("failed to write the resources");
    let result = child.wait_with_output().expect("failed to wait for update");
    Output {
        command: format!("{args:?}"),
        code: result.status.code(),
        signal: None,
        stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
    }
}

#[test]
fn limits_reach_cgroup_and_stats() {
    require_root!();
    let hull = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "100"]);
    let id = running(&hull, &bundle, "update-limits");

    let args = [
        "update",
        "--memory",
        "64M",
        "--memory-reservation",
        "32m",
        "--cpu-share",
        "256",
        "--cpu-period",
        "100000",
        "--cpu-quota",
        "50000",
        "--pids-limit",
        "40",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        &id,
    ];
    hull.exec(&args).expect_success();

    assert_eq!(
        read_cgroup(&id, "memory", "memory.limit_in_bytes"),
        "67108864"
    );
    assert_eq!(
        read_cgroup(&id, "memory", "memory.soft_limit_in_bytes"),
        "33554432"
    );
    assert_eq!(read_cgroup(&id, "cpu", "cpu.shares"), "256");
    assert_eq!(read_cgroup(&id, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(read_cgroup(&id, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read_cgroup(&id, "pids", "pids.max"), "40");
    assert_eq!(read_cgroup(&id, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(read_cgroup(&id, "cpuset", "cpuset.mems"), "0");

    let data = stats(&hull, &id);
    assert_eq!(data["memory"]["usage"]["limit"], 64 << 20);
    assert_eq!(data["pids"]["limit"], 40);
    assert_eq!(data["cpuset"]["cpus"], json!([0]));

    // A second update changes one value and keeps the others.
    hull.exec(&["update", "--pids-limit", "41", &id])
        .expect_success();
    assert_eq!(read_cgroup(&id, "pids", "pids.max"), "41");
    assert_eq!(
        read_cgroup(&id, "memory", "memory.limit_in_bytes"),
        "67108864"
    );
    let data = stats(&hull, &id);
    assert_eq!(data["pids"]["limit"], 41);
    assert_eq!(data["memory"]["usage"]["limit"], 64 << 20);
}

#[test]
fn record_keeps_merged_resources() {
    require_root!();
    let hull = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sleep", "100"]);
    bundle.config["linux"]["resources"]["pids"] = json!({ "limit": 30 });
    let id = running(&hull, &bundle, "update-record");

    hull.exec(&["update", "--memory", "48m", &id])
        .expect_success();
    let record: Value = serde_json::from_str(
        &fs::read_to_string(hull.state_dir(&id).join("state.json")).expect("no state.json"),
    )
    .expect("invalid state.json");
    let resources = &record["config"]["linux"]["resources"];
    assert_eq!(resources["memory"]["limit"], 48 << 20);
    assert_eq!(resources["pids"]["limit"], 30);
}

#[test]
fn quota_alone_keeps_period_like_runc() {
    require_root!();
    let mut bundle = Bundle::busybox(&["sleep", "100"]);
    bundle.config["linux"]["resources"]["cpu"] = json!({ "quota": 20000, "period": 50000 });
    for runtime in [Runtime::hull(), Runtime::runc()] {
        let name = runtime.name().to_string();
        let id = running(&runtime, &bundle, "update-quota");

        runtime
            .exec(&["update", "--cpu-quota", "10000", &id])
            .expect_success();
        assert_eq!(
            read_cgroup(&id, "cpu", "cpu.cfs_quota_us"),
            "10000",
            "{name}"
        );
        assert_eq!(
            read_cgroup(&id, "cpu", "cpu.cfs_period_us"),
            "50000",
            "{name}"
        );

        runtime
            .exec(&["update", "--cpu-period", "40000", &id])
            .expect_success();
        assert_eq!(
            read_cgroup(&id, "cpu", "cpu.cfs_quota_us"),
            "10000",
            "{name}"
        );
        assert_eq!(
            read_cgroup(&id, "cpu", "cpu.cfs_period_us"),
            "40000",
            "{name}"
        );
        runtime.delete_force(&id).expect_success();
    }
}

#[test]
fn stopped_container_fails_like_runc() {
    require_root!();
    let bundle = Bundle::busybox(&["true"]);
    let mut results = Vec::new();
    for runtime in [Runtime::hull(), Runtime::runc()] {
        let id = running(&runtime, &bundle, "update-stopped");
        assert!(runtime.wait_for_status(&id, "stopped", WAIT));
        let output = runtime.exec(&["update", "--memory", "64M", &id]);
        assert!(output.stderr.contains("container not running"), "{output}");
        results.push(output.code());
        runtime.delete_force(&id).expect_success();
    }
    assert_eq!(results[0], results[1], "exit codes of hull and runc differ");
    assert_eq!(results[0], 1);
}

#[test]
fn resources_from_stdin() {
    require_root!();
    let hull = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "100"]);
    let id = running(&hull, &bundle, "update-stdin");

    let input = r#"{"memory": {"limit": 50331648}, "pids": {"limit": 25}}"#;
    // As in runc 1.1, the other flags are ignored when --resources is given.
    let output = update_with_stdin(
        &hull,
        &["update", "--resources", "-", "--pids-limit", "99", &id],
        input,
    );
    output.expect_success();
    assert_eq!(
        read_cgroup(&id, "memory", "memory.limit_in_bytes"),
        "50331648"
    );
    assert_eq!(read_cgroup(&id, "pids", "pids.max"), "25");

    let output = update_with_stdin(&hull, &["update", "-r", "-", &id], "{not json");
    output.expect_code(1);
    assert!(output.stderr.contains("standard input"), "{output}");
}

#[test]
fn resources_from_file() {
    require_root!();
    let hull = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "100"]);
    let id = running(&hull, &bundle, "update-file");

    let file = bundle.path().join("resources.json");
    fs::write(&file, r#"{"cpu": {"shares": 300}}"#).expect("failed to write resources");
    hull.exec(&["update", "-r", file.to_str().unwrap(), &id])
        .expect_success();
    assert_eq!(read_cgroup(&id, "cpu", "cpu.shares"), "300");
}

#[test]
fn rejected_value_is_named() {
    require_root!();
    let hull = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "100"]);
    let id = running(&hull, &bundle, "update-invalid");

    let output = hull.exec(&["update", "--cpuset-cpus", "999", &id]);
    output.expect_code(1);
    assert!(output.stderr.contains("999"), "{output}");
    assert!(output.stderr.contains("cpuset.cpus"), "{output}");

    let output = hull.exec(&["update", "--memory", "lots", &id]);
    output.expect_code(1);
    assert!(
        output.stderr.contains("invalid value for memory"),
        "{output}"
    );

    let output = hull.exec(&["update", "--cpu-period", "-5", &id]);
    output.expect_code(1);
    assert!(output.stderr.contains("cpu-period"), "{output}");

    // The failed updates left the record alone.
    hull.exec(&["update", "--pids-limit", "12", &id])
        .expect_success();
    assert_eq!(read_cgroup(&id, "pids", "pids.max"), "12");
}

#[test]
fn intel_rdt_is_rejected() {
    require_root!();
    let hull = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "100"]);
    let id = running(&hull, &bundle, "update-rdt");

    let output = hull.exec(&["update", "--l3-cache-schema", "L3:0=f", &id]);
    output.expect_code(1);
    assert!(output.stderr.contains("Intel RDT"), "{output}");
    let output = hull.exec(&["update", "--mem-bw-schema", "MB:0=70", &id]);
    output.expect_code(1);
    assert!(output.stderr.contains("Intel RDT"), "{output}");
}

#[test]
fn kernel_memory_is_ignored_with_warning() {
    require_root!();
    let hull = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "100"]);
    let id = running(&hull, &bundle, "update-kmem");

    let before = read_cgroup(&id, "memory", "memory.kmem.limit_in_bytes");
    let output = hull.exec(&["update", "--kernel-memory", "16M", &id]);
    output.expect_success();
    assert!(
        output.stderr.contains("kernel memory settings are ignored"),
        "{output}"
    );
    assert_eq!(
        read_cgroup(&id, "memory", "memory.kmem.limit_in_bytes"),
        before
    );
}

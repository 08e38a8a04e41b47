//! events: one stats event with `--stats`, a stream of stats events, OOM
//! events, and the JSON keys compared with runc.

use std::collections::BTreeSet;
use std::time::Duration;

use hull_integration::output::run_command;
use hull_integration::{require_root, unique_id, Bundle, Runtime};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Keys that runc 1.1 tags `omitempty`: they are missing when their value
/// is zero or empty, so their presence depends on the container's usage.
const ZERO_OMITTED: &[&str] = &[
    "cpu.usage.total",
    "cpu.usage.percpu",
    "cpu.usage.percpu_kernel",
    "cpu.usage.percpu_user",
    "cpu.throttling.periods",
    "cpu.throttling.throttledPeriods",
    "cpu.throttling.throttledTime",
    "cpuset.cpus",
    "cpuset.mems",
    "memory.cache",
    "memory.usage.usage",
    "memory.usage.max",
    "memory.swap.usage",
    "memory.swap.max",
    "memory.kernel.usage",
    "memory.kernel.max",
    "memory.kernelTCP.usage",
    "memory.kernelTCP.max",
    "pids.current",
    "pids.limit",
];

/// Collects the dotted path of every object key below `value`. Array
/// elements are not descended into.
fn key_paths(value: &Value, prefix: &str, paths: &mut BTreeSet<String>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            key_paths(child, &path, paths);
            paths.insert(path);
        }
    }
}

fn limited_bundle(args: &[&str]) -> Bundle {
    let mut bundle = Bundle::busybox(args);
    bundle.config["linux"]["resources"]["memory"] = json!({ "limit": 64 << 20 });
    bundle.config["linux"]["resources"]["pids"] = json!({ "limit": 50 });
    bundle.config["linux"]["resources"]["cpu"] = json!({ "shares": 512 });
    bundle
}

fn stats_event(runtime: &Runtime, id: &str) -> Value {
    let output = runtime.exec(&["events", "--stats", id]);
    output.expect_success();
    let lines: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "expected one event line:\n{output}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{output}"))
}

#[test]
fn stats_event_shape() {
    require_root!();
    let hull = Runtime::hull();
    let id = unique_id("events-stats");
    let bundle = limited_bundle(&["sleep", "100"]);
    hull.run_detached(&id, &bundle).expect_success();

    let event = stats_event(&hull, &id);
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], id.as_str());
    let data = &event["data"];
    assert_eq!(data["memory"]["usage"]["limit"], 64 << 20);
    assert_eq!(data["pids"]["limit"], 50);
    assert_eq!(data["pids"]["current"], 1);
    assert!(data["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0);
    assert!(data["memory"]["raw"].is_object());
    assert!(data["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0);
    assert!(data["network_interfaces"].is_null());
    assert_eq!(data["intel_rdt"], json!({}));
}

#[test]
fn stats_keys_match_runc() {
    require_root!();
    let hull = Runtime::hull();
    let runc = Runtime::runc();
    let bundle = limited_bundle(&["sleep", "100"]);
    let mut paths = Vec::new();
    for runtime in [&hull, &runc] {
        let id = unique_id("events-keys");
        runtime.run_detached(&id, &bundle).expect_success();
        let event = stats_event(runtime, &id);
        let mut set = BTreeSet::new();
        key_paths(&event, "", &mut set);
        paths.push(set);
        runtime.delete_force(&id).expect_success();
    }

    let (hull_paths, runc_paths) = (&paths[0], &paths[1]);
    let is_fixed = |path: &&String| {
        let data_path = path.strip_prefix("data.").unwrap_or(path);
        !ZERO_OMITTED.contains(&data_path)
    };
    let hull_fixed: BTreeSet<_> = hull_paths.iter().filter(is_fixed).collect();
    let runc_fixed: BTreeSet<_> = runc_paths.iter().filter(is_fixed).collect();

    assert_eq!(
        hull_fixed, runc_fixed,
        "keys that runc always prints differ"
    );
    for path in hull_paths.difference(runc_paths) {
        let data_path = path.strip_prefix("data.").unwrap_or(path);
        assert!(
            ZERO_OMITTED.contains(&data_path),
            "hull prints {path}, which runc never prints"
        );
    }
}

#[test]
fn stopped_container_is_rejected() {
    require_root!();
    let hull = Runtime::hull();
    let id = unique_id("events-stopped");
    let bundle = Bundle::busybox(&["true"]);
    hull.run_detached(&id, &bundle).expect_success();
    assert!(hull.wait_for_status(&id, "stopped", WAIT));

    for args in [vec!["events", "--stats", &id], vec!["events", &id]] {
        let output = hull.exec(&args);
        output.expect_code(1);
        let expected = format!("container with id {id} is not running");
        assert!(output.stderr.contains(&expected), "{output}");
    }
}

#[test]
fn nonpositive_interval_is_rejected() {
    require_root!();
    let hull = Runtime::hull();
    let id = unique_id("events-interval");
    let bundle = Bundle::busybox(&["sleep", "100"]);
    hull.run_detached(&id, &bundle).expect_success();

    for interval in ["0s", "0", "-1s"] {
        let output = hull.exec(&["events", "--interval", interval, &id]);
        output.expect_code(1);
        assert!(
            output
                .stderr
                .contains("duration interval must be greater than 0"),
            "{output}"
        );
    }
    let output = hull.exec(&["events", "--interval", "fast", &id]);
    assert!(!output.success(), "{output}");
    assert!(output.stderr.contains("invalid duration"), "{output}");
}

#[test]
fn interval_stream_ends_with_container() {
    require_root!();
    let hull = Runtime::hull();
    let id = unique_id("events-stream");
    let bundle = Bundle::busybox(&["sleep", "2"]);
    hull.run_detached(&id, &bundle).expect_success();

    let cmd = hull.command(&["events", "--interval", "200ms", &id]);
    let output = run_command(cmd, STREAM_TIMEOUT);
    output.expect_success();
    let events: Vec<Value> = output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        events.len() >= 3,
        "expected several stats events in 2s:\n{output}"
    );
    for event in &events {
        assert_eq!(event["type"], "stats", "{event}");
        assert_eq!(event["id"], id.as_str(), "{event}");
        assert!(event["data"]["memory"].is_object(), "{event}");
    }
    assert_eq!(hull.status(&id), "stopped");
}

#[test]
fn oom_kill_is_reported() {
    require_root!();
    let hull = Runtime::hull();
    let id = unique_id("events-oom");
    // The shell keeps the command substitution's output in its own memory,
    // 32 MiB of it against a limit of 8 MiB, so the OOM killer ends it.
    let mut bundle = Bundle::busybox_sh(
        "sleep 1; x=$(head -c 32m /dev/zero | tr '\\0' x); echo survived; sleep 10",
    );
    bundle.config["linux"]["resources"]["memory"] = json!({ "limit": 8 << 20, "swap": 8 << 20 });
    hull.run_detached(&id, &bundle).expect_success();

    let cmd = hull.command(&["events", "--interval", "10s", &id]);
    let output = run_command(cmd, STREAM_TIMEOUT);
    output.expect_success();
    let events: Vec<Value> = output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let ooms: Vec<&Value> = events.iter().filter(|e| e["type"] == "oom").collect();
    assert!(!ooms.is_empty(), "no oom event:\n{output}");
    assert_eq!(ooms[0], &json!({ "type": "oom", "id": id }));
    assert_eq!(hull.status(&id), "stopped");
    let (stdout, _) = hull.container_output(&id);
    assert!(!stdout.contains("survived"), "the shell was not killed");
}

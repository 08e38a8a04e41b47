//! OCI hooks: when each kind runs, the state it gets, failures, timeouts.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use hull_integration::host::cgroup_dirs;
use hull_integration::{require_root, unique_id, Bundle, Output, Runtime};
use serde_json::{json, Value};

const KINDS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// Adds one hook of each kind that appends its kind to `DIR/order` and
/// stores its stdin in `DIR/KIND.json`. `startContainer` runs inside the
/// container, where `DIR` is bind-mounted at `/mnt/hooks`.
fn add_recording_hooks(bundle: &mut Bundle, dir: &Path) {
    bundle
        .add_mount(json!({
            "destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
        }))
        .add_mount(json!({
            "destination": "/mnt/hooks", "type": "bind", "source": dir, "options": ["rbind", "rw"]
        }));
    let mut hooks = json!({});
    for kind in KINDS {
        let out = if kind == "startContainer" {
            Path::new("/mnt/hooks").to_path_buf()
        } else {
            dir.to_path_buf()
        };
        let script = format!(
            "cat > {out}/{kind}.json; echo {kind} >> {out}/order",
            out = out.display()
        );
        hooks[kind] = json!([{ "path": "/bin/sh", "args": ["sh", "-c", script] }]);
    }
    bundle.config["hooks"] = hooks;
}

/// Runs a full lifecycle with recording hooks; returns the hook order and
/// each hook's state with the fields that differ between runs blanked.
fn record_hooks(runtime: &Runtime) -> (Vec<String>, Vec<(String, Value)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut bundle = Bundle::busybox(&["true"]);
    add_recording_hooks(&mut bundle, dir.path());
    let id = unique_id("hooks");
    runtime.create(&id, &bundle).expect_success();
    runtime.start(&id).expect_success();
    assert!(runtime.wait_for_status(&id, "stopped", Duration::from_secs(10)));
    runtime.delete(&id).expect_success();

    let order = fs::read_to_string(dir.path().join("order")).unwrap_or_default();
    let order = order.lines().map(str::to_owned).collect();
    let mut states = Vec::new();
    for kind in KINDS {
        let path = dir.path().join(format!("{kind}.json"));
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let mut state: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{kind} got invalid JSON ({e}): {text}"));
        assert_eq!(state["id"], id.as_str(), "{kind}: {state}");
        assert_eq!(
            state["bundle"],
            bundle.path().to_str().unwrap(),
            "{kind}: {state}"
        );
        if kind != "poststop" {
            assert!(
                state["pid"].as_i64().unwrap_or(0) > 0,
                "{kind} got no pid: {state}"
            );
        }
        for field in ["id", "bundle", "pid"] {
            state[field] = Value::Null;
        }
        states.push((kind.to_owned(), state));
    }
    (order, states)
}

#[test]
fn hooks_order_and_state_match_runc() {
    require_root!();
    let (hull_order, hull_states) = record_hooks(&Runtime::hull());
    let (runc_order, runc_states) = record_hooks(&Runtime::runc());
    // startContainer runs in the container's init and poststart in `start`,
    // so those two can finish in either order.
    let expected = |order: &[String]| -> bool {
        let kinds: Vec<&str> = order.iter().map(String::as_str).collect();
        kinds.len() == 6
            && kinds[..3] == KINDS[..3]
            && kinds[5] == "poststop"
            && kinds[3..5].contains(&"startContainer")
            && kinds[3..5].contains(&"poststart")
    };
    assert!(
        expected(&runc_order),
        "runc ran hooks in order {runc_order:?}"
    );
    assert!(
        expected(&hull_order),
        "hull ran hooks in order {hull_order:?}"
    );
    // hull starts the program only after the startContainer hooks ran, so
    // its order is fixed.
    assert_eq!(hull_order, KINDS, "hull ran hooks in order {hull_order:?}");
    // runc 1.1.5 passes "created" to poststart hooks. The container runs
    // by then, and hull passes "running".
    let mut expected = runc_states.clone();
    for (kind, state) in &mut expected {
        if kind == "poststart" {
            state["status"] = json!("running");
        }
    }
    assert_eq!(hull_states, expected);
}

/// Creates a container whose hook of `kind` runs `script`; returns the
/// create output.
fn create_with_hook(
    runtime: &Runtime,
    id: &str,
    bundle: &mut Bundle,
    kind: &str,
    script: &str,
    timeout: Option<u64>,
) -> Output {
    let mut hook = json!({ "path": "/bin/sh", "args": ["sh", "-c", script] });
    if let Some(timeout) = timeout {
        hook["timeout"] = json!(timeout);
    }
    bundle.config["hooks"] = json!({ kind: [hook] });
    runtime.create(id, bundle)
}

#[test]
fn failing_create_hooks_abort_create() {
    require_root!();
    let runtime = Runtime::hull();
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut bundle = Bundle::busybox(&["true"]);
        let id = unique_id("hookfail");
        let output = create_with_hook(&runtime, &id, &mut bundle, kind, "exit 7", None);
        output.expect_code(1);
        assert!(!runtime.state_dir(&id).exists(), "{kind}: state dir left");
        assert!(cgroup_dirs(&id).is_empty(), "{kind}: cgroup left");
        runtime.state(&id).expect_code(1);
    }
}

#[test]
fn failing_start_container_hook_fails_start() {
    require_root!();
    // The runtime spec: a failing startContainer hook is an error and
    // stops the container. (runc 1.1.5 runs these hooks during create.)
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sleep", "5"]);
    let id = unique_id("starthook");
    create_with_hook(
        &runtime,
        &id,
        &mut bundle,
        "startContainer",
        "echo no >&2; exit 7",
        None,
    )
    .expect_success();
    let start = runtime.start(&id);
    start.expect_code(1);
    assert!(start.stderr.contains("startContainer hook"), "{start}");
    assert!(runtime.wait_for_status(&id, "stopped", Duration::from_secs(10)));
    runtime.delete(&id).expect_success();
    assert!(!runtime.state_dir(&id).exists(), "state dir left");
}

#[test]
fn failing_poststart_hook_is_a_warning() {
    require_root!();
    // The runtime spec: a failing poststart hook only logs a warning, and
    // the container keeps running. (runc 1.1.5 fails instead.)
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sleep", "5"]);
    let id = unique_id("poststart");
    create_with_hook(&runtime, &id, &mut bundle, "poststart", "exit 7", None).expect_success();
    let start = runtime.start(&id);
    start.expect_success();
    assert!(start.stderr.contains("poststart hook"), "{start}");
    assert_eq!(runtime.status(&id), "running");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn failing_poststop_hook_still_deletes() {
    require_root!();
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&["true"]);
    let id = unique_id("poststop");
    create_with_hook(&runtime, &id, &mut bundle, "poststop", "exit 7", None).expect_success();
    runtime.start(&id).expect_success();
    assert!(runtime.wait_for_status(&id, "stopped", Duration::from_secs(10)));
    runtime.delete(&id);
    // The runtime spec makes a poststop failure a warning: the container is
    // gone either way.
    assert!(!runtime.state_dir(&id).exists());
    runtime.state(&id).expect_code(1);
}

#[test]
fn hook_timeout_fails_create() {
    require_root!();
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&["true"]);
    let id = unique_id("hooktimeout");
    let started = Instant::now();
    let output = create_with_hook(
        &runtime,
        &id,
        &mut bundle,
        "createRuntime",
        "exec sleep 30",
        Some(1),
    );
    let elapsed = started.elapsed();
    output.expect_code(1);
    assert!(elapsed < Duration::from_secs(10), "create took {elapsed:?}");
    assert!(
        output.stderr.contains("timed out") || output.stderr.contains("timeout"),
        "{output}"
    );
    assert!(!runtime.state_dir(&id).exists());
}

#[test]
fn hook_env_and_args() {
    require_root!();
    let runtime = Runtime::hull();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let mut bundle = Bundle::busybox(&["true"]);
    bundle.config["hooks"] = json!({ "createRuntime": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo \"$0 $1 $HOOK_VAR\" > {}", out.display()), "arg0", "arg1"],
        "env": ["HOOK_VAR=value"]
    }]});
    let id = unique_id("hookenv");
    runtime.create(&id, &bundle).expect_success();
    assert_eq!(fs::read_to_string(&out).unwrap(), "arg0 arg1 value\n");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn create_container_hook_runs_in_rootfs() {
    require_root!();
    let runtime = Runtime::hull();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cwd");
    let mut bundle = Bundle::busybox(&["true"]);
    // A relative path in the hook names a file of the container, as the
    // hooks of runc's own integration suite expect.
    let script = format!(
        "pwd > {out}; test -x ./bin/busybox && echo busybox >> {out}",
        out = out.display()
    );
    let id = unique_id("hookcwd");
    create_with_hook(&runtime, &id, &mut bundle, "createContainer", &script, None).expect_success();
    let text = fs::read_to_string(&out).unwrap();
    let rootfs = bundle.rootfs().canonicalize().unwrap();
    assert_eq!(text, format!("{}\nbusybox\n", rootfs.display()));
    runtime.delete_force(&id).expect_success();
}

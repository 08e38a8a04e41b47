//! create, start, state, kill, delete and list.

use std::path::Path;
use std::time::Duration;

use hull_integration::host::{cgroup_dirs, mounts_mentioning, process_alive};
use hull_integration::{require_root, unique_id, Bundle, Runtime};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// Shell loop that exits 0 on SIGTERM; pid 1 of a pid namespace only gets
/// the signals it has a handler for.
const TRAP_TERM: &str = "trap 'exit 0' TERM; while true; do sleep 0.1; done";

fn list_entry(runtime: &Runtime, id: &str) -> Option<Value> {
    runtime.list_json().into_iter().find(|c| c["id"] == id)
}

fn list_quiet_ids(runtime: &Runtime) -> Vec<String> {
    let output = runtime.exec(&["list", "-q"]);
    output.expect_success();
    output.stdout.lines().map(str::to_owned).collect()
}

/// Returns the table row of `id` split on runs of spaces.
fn list_table_row(runtime: &Runtime, id: &str) -> Option<Vec<String>> {
    let output = runtime.exec(&["list"]);
    output.expect_success();
    output
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
}

#[track_caller]
fn assert_no_leftovers(runtime: &Runtime, id: &str, bundle: &Bundle) {
    assert!(
        !runtime.state_dir(id).exists(),
        "state directory {} is left",
        runtime.state_dir(id).display()
    );
    assert_eq!(
        cgroup_dirs(id),
        Vec::<std::path::PathBuf>::new(),
        "cgroups are left"
    );
    assert_eq!(
        mounts_mentioning(bundle.path()),
        Vec::<String>::new(),
        "mounts are left"
    );
    assert_eq!(
        mounts_mentioning(&bundle.rootfs()),
        Vec::<String>::new(),
        "mounts are left"
    );
}

#[test]
fn lifecycle_create_start_stop_delete() {
    require_root!();
    let runtime = Runtime::hull();
    // The process runs until the test creates CONTROL/exit.
    let control = tempfile::tempdir().unwrap();
    let mut bundle = Bundle::busybox_sh("while [ ! -e /mnt/control/exit ]; do sleep 0.05; done");
    bundle
        .add_mount(json!({
            "destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
        }))
        .add_mount(json!({
            "destination": "/mnt/control", "type": "bind",
            "source": control.path(), "options": ["rbind", "ro"]
        }));
    let id = unique_id("life");

    runtime.create(&id, &bundle).expect_success();
    let state = runtime.state_json(&id);
    assert_eq!(state["status"], "created", "{state}");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["ociVersion"], "1.0.2-dev");
    assert_eq!(state["bundle"], bundle.path().to_str().unwrap());
    assert_eq!(state["rootfs"], bundle.rootfs().to_str().unwrap());
    let pid = state["pid"].as_i64().expect("state has no pid");
    assert!(pid > 0, "{state}");
    assert!(
        process_alive(pid as i32),
        "init process {pid} is not running"
    );
    assert!(runtime.state_dir(&id).is_dir());
    assert!(
        !cgroup_dirs(&id).is_empty(),
        "no cgroup was created for {id}"
    );

    let entry = list_entry(&runtime, &id).expect("created container is not listed");
    assert_eq!(entry["status"], "created");
    assert_eq!(entry["pid"], pid);
    assert_eq!(list_quiet_ids(&runtime), vec![id.clone()]);
    let row = list_table_row(&runtime, &id).expect("no table row");
    assert_eq!(row[1], pid.to_string());
    assert_eq!(row[2], "created");
    assert_eq!(row[3], bundle.path().to_str().unwrap());

    runtime.start(&id).expect_success();
    assert_eq!(runtime.status(&id), "running");
    assert_eq!(list_entry(&runtime, &id).unwrap()["status"], "running");
    assert_eq!(list_table_row(&runtime, &id).unwrap()[2], "running");

    std::fs::write(control.path().join("exit"), "").unwrap();
    assert!(
        runtime.wait_for_status(&id, "stopped", WAIT),
        "container did not stop: {:?}",
        runtime.container_output(&id)
    );
    let state = runtime.state_json(&id);
    assert_eq!(
        state["pid"], 0,
        "a stopped container reports pid 0: {state}"
    );
    assert_eq!(list_entry(&runtime, &id).unwrap()["status"], "stopped");
    assert_eq!(list_table_row(&runtime, &id).unwrap()[2], "stopped");

    runtime.delete(&id).expect_success();
    assert_no_leftovers(&runtime, &id, &bundle);
    assert!(list_entry(&runtime, &id).is_none());
    assert!(list_quiet_ids(&runtime).is_empty());
    runtime.state(&id).expect_code(1);
}

#[test]
fn list_table_header_matches_runc() {
    require_root!();
    let hull = Runtime::hull().exec(&["list"]);
    let runc = Runtime::runc().exec(&["list"]);
    hull.expect_success();
    assert_eq!(hull.stdout, runc.stdout);
    let hull = Runtime::hull().exec(&["list", "--format", "json"]);
    let runc = Runtime::runc().exec(&["list", "--format", "json"]);
    assert_eq!(hull.stdout, runc.stdout);
}

#[test]
fn run_detach_and_kill_by_name() {
    require_root!();
    let runtime = Runtime::hull();
    for signal in ["TERM", "SIGTERM", "15"] {
        let bundle = Bundle::busybox_sh(TRAP_TERM);
        let id = unique_id("killterm");
        runtime.run_detached(&id, &bundle).expect_success();
        assert_eq!(runtime.status(&id), "running");
        runtime.kill(&id, signal).expect_success();
        assert!(
            runtime.wait_for_status(&id, "stopped", WAIT),
            "kill {signal} did not stop the container"
        );
        runtime.delete(&id).expect_success();
        assert_no_leftovers(&runtime, &id, &bundle);
    }
}

#[test]
fn kill_sigkill_by_name_and_number() {
    require_root!();
    let runtime = Runtime::hull();
    for signal in ["KILL", "SIGKILL", "9"] {
        let bundle = Bundle::busybox(&["sleep", "1000"]);
        let id = unique_id("kill9");
        runtime.run_detached(&id, &bundle).expect_success();
        let pid = runtime.state_json(&id)["pid"].as_i64().unwrap() as i32;
        runtime.kill(&id, signal).expect_success();
        assert!(
            runtime.wait_for_status(&id, "stopped", WAIT),
            "kill {signal}"
        );
        assert!(!process_alive(pid));
        runtime.delete(&id).expect_success();
        assert_no_leftovers(&runtime, &id, &bundle);
    }
}

#[test]
fn kill_default_signal_is_term() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox_sh(TRAP_TERM);
    let id = unique_id("killdefault");
    runtime.run_detached(&id, &bundle).expect_success();
    runtime.exec(&["kill", &id]).expect_success();
    assert!(runtime.wait_for_status(&id, "stopped", WAIT));
    runtime.delete(&id).expect_success();
}

#[test]
fn kill_all_stops_every_process() {
    require_root!();
    let runtime = Runtime::hull();
    // Without a pid namespace, killing init would not end the children.
    let mut bundle = Bundle::busybox_sh("sleep 1000 & sleep 1000 & wait");
    bundle.remove_namespace("pid");
    let id = unique_id("killall");
    runtime.run_detached(&id, &bundle).expect_success();
    let init = runtime.state_json(&id)["pid"].as_i64().unwrap() as i32;

    let children_file = format!("/proc/{init}/task/{init}/children");
    let read_children = || -> Vec<i32> {
        std::fs::read_to_string(&children_file)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .collect()
    };
    let deadline = std::time::Instant::now() + WAIT;
    let mut children = read_children();
    while children.len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        children = read_children();
    }
    assert_eq!(
        children.len(),
        2,
        "expected two sleep children in {children_file}"
    );
    runtime
        .exec(&["kill", "--all", &id, "KILL"])
        .expect_success();
    assert!(runtime.wait_for_status(&id, "stopped", WAIT));
    assert!(!process_alive(init));
    for child in children {
        assert!(!process_alive(child), "child {child} survived kill --all");
    }
    runtime.delete(&id).expect_success();
    assert_no_leftovers(&runtime, &id, &bundle);
}

#[test]
fn kill_signal_zero_checks_existence() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("kill0");
    runtime.run_detached(&id, &bundle).expect_success();
    runtime.kill(&id, "0").expect_success();
    assert_eq!(runtime.status(&id), "running");

    runtime.kill(&id, "KILL").expect_success();
    assert!(runtime.wait_for_status(&id, "stopped", WAIT));
    // As with runc 1.1, only `--all` accepts a stopped container.
    let output = runtime.kill(&id, "0");
    output.expect_code(1);
    assert!(output.stderr.contains("container not running"), "{output}");
    runtime.exec(&["kill", "--all", &id, "0"]).expect_success();
    runtime.delete(&id).expect_success();
    assert_no_leftovers(&runtime, &id, &bundle);
}

#[test]
fn ps_of_stopped_container() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("psstopped");
    runtime.run_detached(&id, &bundle).expect_success();
    runtime.kill(&id, "KILL").expect_success();
    assert!(runtime.wait_for_status(&id, "stopped", WAIT));

    let table = runtime.exec(&["ps", &id]);
    table.expect_success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{table}");
    assert!(lines[0].contains("PID"), "{table}");
    let json = runtime.exec(&["ps", "--format", "json", &id]);
    json.expect_success();
    assert_eq!(json.stdout.trim(), "[]");
    runtime.delete(&id).expect_success();
}

#[test]
fn delete_force_running() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("delforce");
    runtime.run_detached(&id, &bundle).expect_success();
    let pid = runtime.state_json(&id)["pid"].as_i64().unwrap() as i32;

    // Without --force a running container stays.
    let output = runtime.delete(&id);
    output.expect_code(1);
    assert!(output.stderr.contains("running"), "{output}");
    assert_eq!(runtime.status(&id), "running");

    runtime.delete_force(&id).expect_success();
    assert!(!process_alive(pid));
    assert_no_leftovers(&runtime, &id, &bundle);
}

#[test]
fn delete_force_created() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["true"]);
    let id = unique_id("delcreated");
    runtime.create(&id, &bundle).expect_success();
    let pid = runtime.state_json(&id)["pid"].as_i64().unwrap() as i32;
    runtime.delete_force(&id).expect_success();
    assert!(!process_alive(pid));
    assert_no_leftovers(&runtime, &id, &bundle);
}

#[test]
fn start_twice_fails() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["sleep", "1000"]);
    let id = unique_id("starttwice");
    runtime.create(&id, &bundle).expect_success();
    runtime.start(&id).expect_success();
    let output = runtime.start(&id);
    output.expect_code(1);
    assert!(output.stderr.contains("running"), "{output}");
}

#[test]
fn create_pid_file() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["true"]);
    let id = unique_id("pidfile");
    let pid_file = bundle.path().join("init.pid");
    runtime
        .create_with(&id, &bundle, &["--pid-file", pid_file.to_str().unwrap()])
        .expect_success();
    let written = std::fs::read_to_string(&pid_file).expect("pid file is missing");
    let state = runtime.state_json(&id);
    assert_eq!(written.trim(), state["pid"].to_string());
    runtime.delete_force(&id).expect_success();
}

#[test]
fn unknown_container_errors_match_runc() {
    require_root!();
    let hull = Runtime::hull();
    let runc = Runtime::runc();
    for args in [
        &["state", "no-such-container"][..],
        &["start", "no-such-container"],
        &["kill", "no-such-container", "KILL"],
        &["delete", "no-such-container"],
    ] {
        let hull_output = hull.exec(args);
        let runc_output = runc.exec(args);
        assert_eq!(
            hull_output.code, runc_output.code,
            "{hull_output}\n{runc_output}"
        );
        assert!(
            hull_output.stderr.contains("container does not exist"),
            "{hull_output}"
        );
    }
    // runc treats a forced delete of a missing container as done.
    let hull_output = hull.exec(&["delete", "--force", "no-such-container"]);
    let runc_output = runc.exec(&["delete", "--force", "no-such-container"]);
    assert_eq!(
        hull_output.code, runc_output.code,
        "{hull_output}\n{runc_output}"
    );
}

#[test]
fn container_output_after_start() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox_sh("echo out; echo err >&2");
    let id = unique_id("stdio");
    runtime.create(&id, &bundle).expect_success();
    runtime.start(&id).expect_success();
    assert!(runtime.wait_for_status(&id, "stopped", WAIT));
    let (stdout, stderr) = runtime.container_output(&id);
    assert_eq!(stdout, "out\n");
    assert_eq!(stderr, "err\n");
    runtime.delete(&id).expect_success();
    assert!(!Path::new(&runtime.state_dir(&id)).exists());
}

/// Runs `sh -c SCRIPT` with the runtime under test as `$1`, so that the
/// shell can set up descriptors and stdin for it.
fn run_through_shell(runtime: &Runtime, script: &str, args: &[&str]) -> hull_integration::Output {
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(runtime.binary())
        .arg("--root")
        .arg(runtime.root())
        .args(args);
    hull_integration::output::run_command(command, std::time::Duration::from_secs(60))
}

#[test]
fn run_passes_stdin_through() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["sh", "-c", "read line; echo got-$line"]);
    bundle.write();
    let id = unique_id("stdin");
    let output = run_through_shell(
        &runtime,
        "echo hello | \"$@\"",
        &["run", "--bundle", bundle.path().to_str().unwrap(), &id],
    );
    output.expect_success();
    assert_eq!(output.stdout, "got-hello\n", "{output}");
}

#[test]
fn run_preserve_fds() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["sh", "-c", "cat <&3; ls /proc/self/fd | tr '\\n' ' '"]);
    bundle.write();
    let id = unique_id("fds");
    let output = run_through_shell(
        &runtime,
        "echo through-fd-3 > /tmp/hull-fd3-$$; exec 3</tmp/hull-fd3-$$ 4</dev/null; rm /tmp/hull-fd3-$$; \"$@\"",
        &["run", "--preserve-fds", "1", "--bundle", bundle.path().to_str().unwrap(), &id],
    );
    output.expect_success();
    assert!(output.stdout.starts_with("through-fd-3\n"), "{output}");
    // fd 4 of the caller is not passed; ls opens one directory fd itself.
    let fds: Vec<&str> = output
        .stdout
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert!(fds.contains(&"3"), "{output}");
    assert!(fds.len() <= 5, "{output}");
}

#[test]
fn no_pivot_and_session_keyring() {
    require_root!();
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&[
        "sh",
        "-c",
        "cat /proc/self/mountinfo | head -1; cat /proc/keys",
    ]);
    // /proc/keys is masked by default; the test reads it.
    bundle.config["linux"]["maskedPaths"] = serde_json::json!([]);
    let id = unique_id("nopivot");
    let output = runtime.run_with(&id, &bundle, &["--no-pivot"]);
    output.expect_success();
    assert!(output.stdout.contains(&format!("_ses.{id}")), "{output}");

    let id = unique_id("keyring");
    let output = runtime.run_with(&id, &bundle, &["--no-new-keyring"]);
    output.expect_success();
    assert!(!output.stdout.contains(&format!("_ses.{id}")), "{output}");
}

#[test]
fn kill_realtime_and_unknown_signals() {
    require_root!();
    let runtime = Runtime::hull();
    let id = unique_id("sig0");
    let bundle = Bundle::busybox(&["sleep", "600"]);
    runtime.run_detached(&id, &bundle).expect_success();
    runtime.kill(&id, "0").expect_success();
    assert_eq!(runtime.status(&id), "running");
    runtime.kill(&id, "RTMIN+1").expect_success();
    runtime.kill(&id, "99").expect_code(1);
    runtime.delete_force(&id).expect_success();
}

#[test]
fn frozen_and_shared_cgroups() {
    require_root!();
    let runtime = Runtime::hull();
    let path = format!("/{}", unique_id("hull-shared-cg"));
    let mut bundle = Bundle::busybox(&["sleep", "600"]);
    bundle.config["linux"]["cgroupsPath"] = serde_json::json!(path);
    let first = unique_id("cg1");
    runtime.run_detached(&first, &bundle).expect_success();
    // A second container in the same cgroup is allowed, with runc's warning.
    let second = unique_id("cg2");
    let output = runtime.run_detached(&second, &bundle);
    output.expect_success();
    assert!(
        output.stderr.contains("container's cgroup is not empty"),
        "{output}"
    );
    runtime.delete_force(&second).expect_success();

    // A frozen cgroup is refused, and it stays as it was.
    runtime.exec(&["pause", &first]).expect_success();
    let third = unique_id("cg3");
    let output = runtime.run_detached(&third, &bundle);
    output.expect_code(1);
    assert!(
        output
            .stderr
            .contains("container's cgroup unexpectedly frozen"),
        "{output}"
    );
    assert!(!runtime.state_dir(&third).exists());
    assert!(std::path::Path::new(&format!("/sys/fs/cgroup/freezer{path}")).is_dir());
    runtime.delete_force(&first).expect_success();
}

#[test]
fn cgroup_joined_by_init_and_exec() {
    require_root!();
    let runtime = Runtime::hull();
    let path = format!("/{}", unique_id("hull-join-cg"));
    let mut bundle = Bundle::busybox(&["sleep", "600"]);
    bundle.config["linux"]["cgroupsPath"] = serde_json::json!(path);
    let id = unique_id("join");
    runtime.create(&id, &bundle).expect_success();
    let pid = runtime.state_json(&id)["pid"].as_i64().unwrap();
    hull_integration::host::assert_in_cgroup(pid, &path);
    runtime.exec(&["start", &id]).expect_success();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("exec.pid");
    let pid_arg = pid_file.to_str().unwrap();
    let output = runtime.exec(&["exec", "-d", "--pid-file", pid_arg, &id, "sleep", "600"]);
    output.expect_success();
    let exec_pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    hull_integration::host::assert_in_cgroup(exec_pid, &path);
    runtime.delete_force(&id).expect_success();
}

#[test]
fn frozen_parent_cgroup_is_rejected() {
    require_root!();
    let freezer = std::path::Path::new("/sys/fs/cgroup/freezer");
    if !freezer.is_dir() {
        eprintln!("skipped: no v1 freezer hierarchy");
        return;
    }
    let runtime = Runtime::hull();
    let parent = unique_id("hull-frozen-parent");
    let parent_dir = freezer.join(&parent);
    std::fs::create_dir(&parent_dir).unwrap();
    std::fs::write(parent_dir.join("freezer.state"), "FROZEN").unwrap();
    let path = format!("/{parent}/child");
    let mut bundle = Bundle::busybox(&["true"]);
    bundle.config["linux"]["cgroupsPath"] = json!(path);
    let id = unique_id("frozen-parent");
    let output = runtime.create(&id, &bundle);
    let child_left = parent_dir.join("child").exists();
    std::fs::write(parent_dir.join("freezer.state"), "THAWED").unwrap();
    for dir in cgroup_dirs(&parent).iter().rev() {
        let _ = std::fs::remove_dir(dir.join("child"));
        let _ = std::fs::remove_dir(dir);
    }
    output.expect_code(1);
    assert!(output.stderr.contains("frozen parent cgroup"), "{output}");
    assert!(output.stderr.contains(&path), "{output}");
    assert!(!child_left, "the new cgroup was left behind");
    assert!(!runtime.state_dir(&id).exists());
}

//! `exec`: a new process in a running container, beside runc.

use std::fs;
use std::time::Duration;

use hull_integration::{require_root, unique_id, Bundle, Output, Runtime};
use serde_json::json;

/// Starts a detached `sleep` container on `runtime`; returns its id and
/// its bundle, which must outlive it (runc's exec enters the bundle).
fn sleeping(runtime: &Runtime) -> (String, Bundle) {
    let id = unique_id("exec");
    let bundle = Bundle::busybox(&["sleep", "600"]);
    runtime.run_detached(&id, &bundle).expect_success();
    (id, bundle)
}

/// Runs `exec ARGS` on hull and runc against a sleeping container each and
/// returns both outputs.
fn exec_on_both(args: &[&str]) -> (Output, Output) {
    let mut outputs = vec![];
    for runtime in [Runtime::hull(), Runtime::runc()] {
        let (id, _bundle) = sleeping(&runtime);
        let mut full = vec!["exec"];
        let split = args.iter().position(|a| *a == "--").unwrap_or(0);
        full.extend(&args[..split]);
        full.push(&id);
        full.extend(args[split..].iter().filter(|a| **a != "--"));
        outputs.push(runtime.exec(&full));
        runtime.delete_force(&id).expect_success();
    }
    let runc = outputs.pop().unwrap();
    (outputs.pop().unwrap(), runc)
}

#[test]
fn exec_output_and_exit_codes_match_runc() {
    require_root!();
    for args in [
        &["--", "echo", "hi"][..],
        &["--", "sh", "-c", "exit 5"],
        &["--", "sh", "-c", "kill -9 $$"],
        &["-u", "1000:1000", "--", "id"],
        &[
            "--cwd",
            "/tmp",
            "-e",
            "FOO=bar",
            "--",
            "sh",
            "-c",
            "pwd; echo $FOO",
        ],
        &[
            "--",
            "sh",
            "-c",
            "grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status",
        ],
        &[
            "--cap",
            "CAP_NET_ADMIN",
            "--",
            "grep",
            "CapEff",
            "/proc/self/status",
        ],
        &[
            "--no-new-privs",
            "--",
            "grep",
            "NoNewPrivs",
            "/proc/self/status",
        ],
        &["-g", "10", "-g", "29", "--", "id"],
    ] {
        let (hull, runc) = exec_on_both(args);
        assert_eq!(hull.code, runc.code, "{args:?}\n{hull}\n{runc}");
        assert_eq!(hull.stdout, runc.stdout, "{args:?}\n{hull}\n{runc}");
    }
}

#[test]
fn exec_joins_namespaces_and_cgroup() {
    require_root!();
    let runtime = Runtime::hull();
    let (id, _bundle) = sleeping(&runtime);
    let pid = runtime.state_json(&id)["pid"].as_i64().unwrap();
    let script = "for n in ipc mnt net pid uts cgroup; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup";
    let output = runtime.exec(&["exec", &id, "sh", "-c", script]);
    output.expect_success();
    let mut expected = String::new();
    for name in ["ipc", "mnt", "net", "pid", "uts", "cgroup"] {
        let link = fs::read_link(format!("/proc/{pid}/ns/{name}")).unwrap();
        expected.push_str(&format!("{}\n", link.display()));
    }
    // The init's view of its cgroups, read through the container's eyes.
    let init_cgroups = runtime.exec(&["exec", &id, "cat", "/proc/1/cgroup"]);
    expected.push_str(&init_cgroups.stdout);
    assert_eq!(output.stdout, expected, "{output}");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn exec_missing_binary_keeps_container_running() {
    require_root!();
    let runtime = Runtime::hull();
    let (id, _bundle) = sleeping(&runtime);
    let output = runtime.exec(&["exec", &id, "no-such-program"]);
    output.expect_code(255);
    assert!(
        output.stderr.contains("executable file not found"),
        "{output}"
    );
    assert!(output.stderr.contains("no-such-program"), "{output}");
    assert_eq!(runtime.status(&id), "running");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn exec_bad_user_and_cwd_fail_clearly() {
    require_root!();
    let runtime = Runtime::hull();
    let (id, _bundle) = sleeping(&runtime);
    let output = runtime.exec(&["exec", "-u", "nobody", &id, "true"]);
    output.expect_code(255);
    assert!(output.stderr.contains("nobody"), "{output}");
    let output = runtime.exec(&["exec", "--cwd", "/etc/passwd", &id, "true"]);
    output.expect_code(255);
    assert!(output.stderr.contains("/etc/passwd"), "{output}");
    assert_eq!(runtime.status(&id), "running");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn exec_paused_and_stopped_fail() {
    require_root!();
    let runtime = Runtime::hull();
    let (id, _bundle) = sleeping(&runtime);
    runtime.exec(&["pause", &id]).expect_success();
    assert_eq!(runtime.status(&id), "paused");
    let output = runtime.exec(&["exec", &id, "true"]);
    output.expect_code(255);
    assert!(output.stderr.contains("paused"), "{output}");
    // With --ignore-paused the process starts frozen and runs on resume.
    let detached = runtime.exec(&["exec", "-d", "--ignore-paused", &id, "true"]);
    detached.expect_success();
    runtime.exec(&["resume", &id]).expect_success();
    assert_eq!(runtime.status(&id), "running");

    runtime.kill(&id, "KILL").expect_success();
    assert!(runtime.wait_for_status(&id, "stopped", Duration::from_secs(10)));
    let output = runtime.exec(&["exec", &id, "true"]);
    output.expect_code(255);
    assert!(output.stderr.contains("stopped"), "{output}");
    runtime.delete(&id).expect_success();
}

#[test]
fn exec_process_file_and_pid_file() {
    require_root!();
    let runtime = Runtime::hull();
    let (id, _bundle) = sleeping(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let process = dir.path().join("process.json");
    fs::write(
        &process,
        json!({
            "terminal": false,
            "user": { "uid": 1000, "gid": 1000 },
            "args": ["sh", "-c", "id -u; echo $GREETING; pwd"],
            "env": ["PATH=/bin", "GREETING=hello"],
            "cwd": "/tmp"
        })
        .to_string(),
    )
    .unwrap();
    let output = runtime.exec(&["exec", "--process", process.to_str().unwrap(), &id]);
    output.expect_success();
    assert_eq!(output.stdout, "1000\nhello\n/tmp\n", "{output}");

    let pid_file = dir.path().join("pid");
    runtime
        .exec(&[
            "exec",
            "-d",
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
            "sleep",
            "30",
        ])
        .expect_success();
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\u{0}30\u{0}");
    let ps = runtime.exec(&["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_str(&ps.stdout).unwrap();
    assert!(pids.contains(&pid), "{ps}");
    runtime.delete_force(&id).expect_success();
}

#[test]
fn exec_preserve_fds_passes_only_those() {
    require_root!();
    let runtime = Runtime::hull();
    let (id, _bundle) = sleeping(&runtime);
    // The shell opens fds 3 and 4; only 3 is preserved.
    let mut command = runtime.command(&["exec", "--preserve-fds", "1", &id, "ls", "/proc/self/fd"]);
    let script = format!(
        "exec 3</dev/null 4</dev/null; exec {} \"$@\"",
        runtime.binary().display()
    );
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    command = std::process::Command::new("sh");
    command.arg("-c").arg(script).arg("sh").args(args);
    let output = hull_integration::output::run_command(command, Duration::from_secs(30));
    output.expect_success();
    // ls itself opens one more directory fd (4 at most).
    let fds: Vec<&str> = output.stdout.lines().collect();
    assert!(fds.contains(&"3"), "{output}");
    assert!(
        fds.iter().all(|fd| ["0", "1", "2", "3", "4"].contains(fd)),
        "{output}"
    );
    runtime.delete_force(&id).expect_success();
}

#[test]
fn pause_resume_and_force_delete_paused() {
    require_root!();
    let runtime = Runtime::hull();
    let (id, _bundle) = sleeping(&runtime);
    runtime.exec(&["pause", &id]).expect_success();
    assert_eq!(runtime.status(&id), "paused");
    let pid = runtime.state_json(&id)["pid"].as_i64().unwrap();
    let state = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        state.contains("State:\tD") || state.contains("State:\tS"),
        "{state}"
    );
    runtime.exec(&["resume", &id]).expect_success();
    assert_eq!(runtime.status(&id), "running");
    runtime.exec(&["resume", &id]).expect_code(1);
    runtime.exec(&["pause", &id]).expect_success();
    runtime.delete_force(&id).expect_success();
    assert!(!runtime.state_dir(&id).exists());
    assert!(hull_integration::host::cgroup_dirs(&id).is_empty());
}

#[test]
fn exec_process_file_without_user() {
    require_root!();
    let hull = Runtime::hull();
    let (id, bundle) = sleeping(&hull);
    let file = bundle.path().join("process-no-user.json");
    let process = json!({ "args": ["id"], "cwd": "/", "env": ["PATH=/bin:/usr/bin"] });
    fs::write(&file, process.to_string()).unwrap();

    let output = hull.exec(&["exec", "--process", file.to_str().unwrap(), &id]);

    output.expect_success();
    assert!(
        output.stdout.starts_with("uid=0(root) gid=0(root)"),
        "{output}"
    );
    hull.delete_force(&id).expect_success();
}

/// Returns the line of `/proc/self/cgroup` output for the v1 `controller`.
fn cgroup_line<'a>(output: &'a str, controller: &str) -> &'a str {
    output
        .lines()
        .find(|line| {
            line.split(':')
                .nth(1)
                .is_some_and(|list| list.split(',').any(|c| c == controller))
        })
        .unwrap_or_else(|| panic!("no {controller} line in:\n{output}"))
}

#[test]
fn exec_cgroup_places_in_sub_cgroup() {
    require_root!();
    if !std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("skipped: no v1 memory hierarchy");
        return;
    }
    let hull = Runtime::hull();
    let id = unique_id("exec-cgroup");
    let mut bundle = Bundle::busybox(&["sleep", "600"]);
    // Without a cgroup namespace /proc/self/cgroup shows the host paths.
    bundle.remove_namespace("cgroup");
    hull.run_detached(&id, &bundle).expect_success();
    let memory = hull_integration::host::cgroup_dirs(&id)
        .into_iter()
        .find(|dir| dir.starts_with("/sys/fs/cgroup/memory"))
        .expect("no memory cgroup for the container");
    fs::create_dir(memory.join("submem")).unwrap();
    let exec = |cgroups: &[&str]| {
        let mut args = vec!["exec"];
        for cgroup in cgroups {
            args.extend(["--cgroup", cgroup]);
        }
        args.extend([id.as_str(), "cat", "/proc/self/cgroup"]);
        hull.exec(&args)
    };

    let above = exec(&[".."]);
    assert!(!above.success(), "{above}");
    assert!(
        above.stderr.contains(" .. is not a sub cgroup path"),
        "{above}"
    );

    let missing = exec(&["cpu:nonexistent"]);
    assert!(!missing.success(), "{missing}");
    assert!(
        missing
            .stderr
            .contains("/nonexistent/cgroup.procs: no such file"),
        "{missing}"
    );

    let unknown = exec(&["whaaat:/"]);
    assert!(!unknown.success(), "{unknown}");
    assert!(unknown.stderr.contains("unknown controller"), "{unknown}");

    let top = exec(&["/"]);
    top.expect_success();
    assert!(cgroup_line(&top.stdout, "memory").ends_with(&id), "{top}");

    let sub = exec(&["memory:submem"]);
    sub.expect_success();
    let suffix = format!("{id}/submem");
    assert!(
        cgroup_line(&sub.stdout, "memory").ends_with(&suffix),
        "{sub}"
    );
    assert!(cgroup_line(&sub.stdout, "cpu").ends_with(&id), "{sub}");

    hull.delete_force(&id).expect_success();
}

//! run, ps, exec, stop, start, rm and exit codes, as docker documents them.

use std::time::Duration;

use hull_integration::containers::Host;
use hull_integration::{require_root, require_tools};

#[test]
fn run_rm_prints_and_passes_exit_code() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let hi = host.hullctl(&[
        "run",
        "--rm",
        "--network",
        "none",
        &host.busybox,
        "echo",
        "hi",
    ]);
    assert_eq!(hi.code, Some(0), "{hi}");
    assert_eq!(hi.stdout, "hi\n", "{hi}");
    let listed = host.hullctl_ok(&["ps", "-aq"]);
    assert_eq!(listed.stdout, "", "--rm left a container: {listed}");

    // A line longer than a pipe's buffer, ended by the exit, reaches a
    // piped stdout whole.
    let long = host.hullctl(&[
        "run",
        "--rm",
        "--network",
        "none",
        &host.busybox,
        "sh",
        "-c",
        "head -c 300000 /dev/zero | tr '\\0' x; echo; echo end",
    ]);
    assert_eq!(long.code, Some(0), "{}", long.stderr);
    assert_eq!(long.stdout.len(), 300005, "{}", long.stderr);
    assert!(long.stdout.ends_with("x\nend\n"), "{}", long.stderr);

    let failed = host.hullctl(&[
        "run",
        "--network",
        "none",
        "--name",
        "three",
        &host.busybox,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(failed.code, Some(3), "{failed}");
    assert_eq!(failed.stdout, "out\n", "{failed}");
    assert_eq!(failed.stderr, "err\n", "{failed}");
    let ps = host.hullctl_ok(&["ps", "-a"]);
    assert!(ps.stdout.contains("Exited (3)"), "{ps}");
    assert!(ps.stdout.contains("three"), "{ps}");
    let inspect = host.hullctl_ok(&["inspect", "three"]);
    let value: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(value[0]["State"]["ExitCode"], 3, "{inspect}");
    assert_eq!(value[0]["Name"], "/three", "{inspect}");
    host.hullctl_ok(&["rm", "three"]);
}

#[test]
fn detached_exec_stop_start_rm() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let script = "trap 'exit 0' TERM; echo started; while true; do sleep 0.1; done";
    let run = host.hullctl_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "web",
        &host.busybox,
        "sh",
        "-c",
        script,
    ]);
    let id = run.stdout.trim().to_owned();
    assert_eq!(id.len(), 64, "{run}");

    let ps = host.hullctl_ok(&["ps"]);
    assert!(ps.stdout.contains(&id[..12]), "{ps}");
    assert!(ps.stdout.contains("Up "), "{ps}");
    let quiet = host.hullctl_ok(&["ps", "-q"]);
    assert_eq!(quiet.stdout.trim(), &id[..12], "{quiet}");
    let formatted = host.hullctl_ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(formatted.stdout, "web running\n", "{formatted}");

    let exec = host.hullctl(&["exec", "web", "sh", "-c", "echo in-exec; exit 4"]);
    assert_eq!(exec.code, Some(4), "{exec}");
    assert_eq!(exec.stdout, "in-exec\n", "{exec}");
    let user = host.hullctl_ok(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "X=y",
        "web",
        "sh",
        "-c",
        "id -u; pwd; echo $X",
    ]);
    assert_eq!(user.stdout, "65534\n/tmp\ny\n", "{user}");

    // Input from a pipe ends with the pipe, and the process reads its end.
    let (piped, _) = host.hullctl_with_input(&["exec", "-i", "web", "cat"], b"through exec\n");
    assert_eq!(piped.code, Some(0), "{piped}");
    assert_eq!(piped.stdout, "through exec\n", "{piped}");

    // The exit of the first start must not end the second.
    host.hullctl_ok(&["restart", "-t", "2", "web"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(host.state("web"), "running");
    host.hullctl_ok(&["exec", "web", "true"]);

    let removed = host.hullctl(&["rm", "web"]);
    assert_ne!(
        removed.code,
        Some(0),
        "rm of a running container succeeded: {removed}"
    );
    assert!(removed.stderr.contains("running"), "{removed}");

    host.hullctl_ok(&["stop", "web"]);
    assert_eq!(host.state("web"), "exited");
    let stopped = host.hullctl(&["exec", "web", "true"]);
    assert_ne!(stopped.code, Some(0), "{stopped}");
    assert!(stopped.stderr.contains("not running"), "{stopped}");

    host.hullctl_ok(&["start", "web"]);
    assert!(host.wait_for_state("web", "running", Duration::from_secs(5)));
    host.hullctl_ok(&["rm", "-f", "web"]);
    let listed = host.hullctl_ok(&["ps", "-aq"]);
    assert_eq!(listed.stdout, "", "{listed}");
    assert!(!host.container_dir(&id).exists(), "rm left {}", id);
}

#[test]
fn foreground_run_passes_signals() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let script =
        "trap 'echo got-int; exit 9' INT; touch /tmp/ready; while true; do sleep 0.1; done";
    let child = host
        .command(&[
            "run",
            "--network",
            "none",
            "--name",
            "sig",
            &host.busybox,
            "sh",
            "-c",
            script,
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = host.hullctl(&["exec", "sig", "test", "-e", "/tmp/ready"]);
        if ready.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the container never got ready: {ready}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(9), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "got-int\n");
}

#[test]
fn stdin_create_start_wait() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let mut child = host
        .command(&[
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            &host.busybox,
            "sh",
            "-c",
            "tr a-z A-Z; exit 6",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"piped through\n").unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(6), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "PIPED THROUGH\n");

    let created = host.hullctl_ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "later",
        &host.busybox,
        "sh",
        "-c",
        "echo ran; exit 2",
    ]);
    assert_eq!(created.stdout.trim().len(), 64, "{created}");
    assert_eq!(host.state("later"), "created");
    let ps = host.hullctl_ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert_eq!(ps.stdout, "later Created\n", "{ps}");
    let started = host.hullctl(&["start", "-a", "later"]);
    assert_eq!(started.code, Some(2), "{started}");
    assert_eq!(started.stdout, "ran\n", "{started}");
    let waited = host.hullctl_ok(&["wait", "later"]);
    assert_eq!(waited.stdout, "2\n", "{waited}");
    host.hullctl_ok(&["restart", "later"]);
    let waited = host.hullctl_ok(&["wait", "later"]);
    assert_eq!(waited.stdout, "2\n", "{waited}");
    let logs = host.hullctl_ok(&["logs", "later"]);
    assert_eq!(logs.stdout, "ran\nran\n", "{logs}");
}

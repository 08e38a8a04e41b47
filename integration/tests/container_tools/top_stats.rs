//! `top` and `stats` of running and stopped containers.

use hull_integration::containers::Host;
use hull_integration::{require_root, require_tools};

/// Starts a detached busybox container named `name` that sleeps, with
/// `extra` flags before the image, and returns its id.
fn run_sleeper(host: &Host, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--network", "none", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&host.busybox, "sleep", "1000"]);
    let run = host.hullctl_ok(&args);
    run.stdout.trim().to_owned()
}

/// Returns the pid of container `name`'s process as `inspect` reports it.
fn init_pid(host: &Host, name: &str) -> u64 {
    let output = host.hullctl_ok(&["inspect", name]);
    let value: serde_json::Value =
        serde_json::from_str(&output.stdout).expect("inspect prints JSON");
    value[0]["State"]["Pid"]
        .as_u64()
        .expect("a running container has a pid")
}

#[test]
fn top_lists_sleep() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    run_sleeper(&host, "sleeper", &[]);
    let pid = init_pid(&host, "sleeper");

    let top = host.hullctl_ok(&["top", "sleeper"]);
    let lines: Vec<&str> = top.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{top}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{top}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], "root", "{top}");
    assert_eq!(row[1], pid.to_string(), "{top}");
    assert_eq!(row[5], "?", "{top}");
    assert_eq!(row[6], "00:00:00", "{top}");
    assert!(lines[1].ends_with("sleep 1000"), "{top}");
    let stime = row[4];
    assert!(
        stime.len() == 5 && stime.as_bytes()[2] == b':',
        "STIME is not HH:MM: {top}"
    );

    let with_exec = host.hullctl(&["exec", "-d", "sleeper", "sleep", "999"]);
    assert_eq!(with_exec.code, Some(0), "{with_exec}");
    let mut listed = String::new();
    for _ in 0..50 {
        listed = host.hullctl_ok(&["top", "sleeper", "-o", "pid"]).stdout;
        if listed.contains("sleep 999") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        listed.contains("sleep 999"),
        "top misses the exec process:\n{listed}"
    );
    assert!(listed.contains("sleep 1000"), "{listed}");
}

#[test]
fn top_of_stopped_container_fails() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    host.hullctl_ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "idle",
        &host.busybox,
        "true",
    ]);
    let top = host.hullctl(&["top", "idle"]);
    assert_ne!(top.code, Some(0), "{top}");
    assert!(
        top.stderr.contains("container idle is not running"),
        "{top}"
    );
    let unknown = host.hullctl(&["top", "nosuch"]);
    assert_ne!(unknown.code, Some(0), "{unknown}");
    assert!(
        unknown.stderr.contains("no such container: nosuch"),
        "{unknown}"
    );
}

#[test]
fn stats_shows_memory_limit_and_pids() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let id = run_sleeper(&host, "limited", &["--memory", "64m"]);

    let stats = host.hullctl_ok(&["stats", "--no-stream"]);
    let lines: Vec<&str> = stats.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stats}");
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %"),
        "{stats}"
    );
    assert!(lines[0].ends_with("NET I/O   BLOCK I/O   PIDS"), "{stats}");
    assert!(lines[1].starts_with(&id[..12]), "{stats}");
    assert!(lines[1].contains(" limited "), "{stats}");
    assert!(lines[1].contains(" / 64MiB "), "{stats}");
    assert!(
        lines[1].contains("0B / 0B"),
        "no network is shown as 0B / 0B: {stats}"
    );
    assert!(lines[1].ends_with(" 1"), "one process: {stats}");
}

#[test]
fn stats_json_and_stopped_containers() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    run_sleeper(&host, "busy", &["--memory", "64m"]);
    host.hullctl_ok(&["exec", "-d", "busy", "sh", "-c", "while :; do :; done"]);
    host.hullctl_ok(&[
        "create",
        "--network",
        "none",
        "--name",
        "idle",
        &host.busybox,
        "true",
    ]);

    let stats = host.hullctl_ok(&["stats", "--no-stream", "--format", "json", "busy"]);
    let lines: Vec<&str> = stats.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stats}");
    let row: serde_json::Value =
        serde_json::from_str(lines[0]).expect("each line is a JSON object");
    assert_eq!(row["Name"], "busy", "{stats}");
    assert_eq!(row["PIDs"], "2", "{stats}");
    let memory = row["MemUsage"].as_str().unwrap_or_default();
    assert!(memory.ends_with(" / 64MiB"), "{stats}");
    let cpu: f64 = row["CPUPerc"]
        .as_str()
        .and_then(|cpu| cpu.strip_suffix('%'))
        .and_then(|cpu| cpu.parse().ok())
        .expect("CPUPerc is a percentage");
    assert!(cpu > 20.0, "a busy loop shows CPU use: {stats}");

    let all = host.hullctl_ok(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.CPUPerc}} {{.PIDs}}",
    ]);
    let mut lines: Vec<&str> = all.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines.len(), 2, "{all}");
    assert!(lines[0].starts_with("busy "), "{all}");
    assert_eq!(lines[1], "idle 0.00% 0", "{all}");

    let running = host.hullctl_ok(&["stats", "--no-stream", "--format", "{{.Name}}"]);
    assert_eq!(running.stdout, "busy\n", "{running}");

    let unknown = host.hullctl(&["stats", "--no-stream", "nosuch"]);
    assert_ne!(unknown.code, Some(0), "{unknown}");
    assert!(
        unknown.stderr.contains("no such container: nosuch"),
        "{unknown}"
    );
}

#[test]
fn stats_streams_until_interrupted() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    run_sleeper(&host, "streamed", &[]);
    let child = host
        .command(&["stats", "--format", "{{.Name}} {{.PIDs}}"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run hullctl stats");
    std::thread::sleep(std::time::Duration::from_millis(3500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("interrupt hullctl stats");
    let output = child.wait_with_output().expect("wait for hullctl stats");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let frames = stdout.lines().filter(|line| *line == "streamed 1").count();
    assert!(frames >= 2, "expected a frame a second: {stdout:?}");
    assert_eq!(frames, stdout.lines().count(), "{stdout:?}");
}

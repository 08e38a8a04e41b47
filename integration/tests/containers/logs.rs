//! The docker workflow on the default network, and container output in
//! json-file logs: follow, tail, timestamps, rotation, restarts and --rm
//! of detached containers.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hull_integration::containers::Host;
use hull_integration::{require_root, require_tools};

/// Waits up to `timeout` for `check` to hold.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn web_server_workflow() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let script = "mkdir -p /www && echo page > /www/index.html && echo starting && exec httpd -f -v -p 80 -h /www";
    let run = host.hullctl_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        &host.busybox,
        "sh",
        "-c",
        script,
    ]);
    let id = run.stdout.trim().to_owned();
    assert!(host.wait_for_state("web", "running", Duration::from_secs(10)));
    let ps = host.hullctl_ok(&["ps"]);
    assert!(
        ps.stdout.contains("web") && ps.stdout.contains("Up "),
        "{ps}"
    );

    // The default network gives the container an address on a bridge.
    let inspect = host.hullctl_ok(&["inspect", "web"]);
    let value: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(value[0]["HostConfig"]["NetworkMode"], "bridge", "{inspect}");
    let ip = value[0]["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!ip.is_empty(), "{inspect}");

    let fetched = host.hullctl_ok(&["exec", "web", "wget", "-q", "-O", "-", "http://127.0.0.1/"]);
    assert_eq!(fetched.stdout, "page\n", "{fetched}");
    assert!(
        eventually(Duration::from_secs(5), || host
            .hullctl_ok(&["logs", "web"])
            .stdout
            .contains("starting")),
        "no output in the log"
    );

    host.hullctl_ok(&["stop", "web"]);
    assert_eq!(host.state("web"), "exited");
    let logs = host.hullctl_ok(&["logs", "web"]);
    assert!(logs.stdout.starts_with("starting\n"), "{logs}");

    host.hullctl_ok(&["start", "web"]);
    assert!(host.wait_for_state("web", "running", Duration::from_secs(10)));
    assert!(
        eventually(Duration::from_secs(5), || {
            host.hullctl_ok(&["logs", "web"])
                .stdout
                .matches("starting")
                .count()
                == 2
        }),
        "the restarted container did not log again"
    );
    host.hullctl_ok(&["rm", "-f", "web"]);
    assert!(!host.container_dir(&id).exists());
}

#[test]
fn logs_follow_tail_timestamps() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let script = "for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; sleep 2; echo last";
    host.hullctl_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "talker",
        &host.busybox,
        "sh",
        "-c",
        script,
    ]);

    let mut follow = host
        .command(&["logs", "-f", "talker"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first: Vec<String> = (0..5).map(|_| lines.next().unwrap().unwrap()).collect();
    assert_eq!(first, ["line1", "line2", "line3", "line4", "line5"]);
    // -f ends by itself once the container has exited.
    assert_eq!(lines.next().unwrap().unwrap(), "last");
    assert!(lines.next().is_none());
    let status = follow.wait().unwrap();
    assert!(status.success());

    // --tail counts the lines of both streams, as docker's does.
    let tail = host.hullctl_ok(&["logs", "--tail", "3", "talker"]);
    assert_eq!(tail.stdout, "line5\nlast\n", "{tail}");
    assert_eq!(tail.stderr, "oops\n", "{tail}");
    let stamped = host.hullctl_ok(&["logs", "-t", "--tail", "1", "talker"]);
    let (stamp, text) = stamped.stdout.trim_end().split_once(' ').unwrap();
    assert_eq!(text, "last", "{stamped}");
    // RFC 3339 with nanoseconds in UTC: 2026-12-04T22:00:00.123456789Z.
    assert_eq!(stamp.len(), 30, "{stamped}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamped}"
    );
    let future = host.hullctl_ok(&["logs", "--since", "2099-01-01T00:00:00Z", "talker"]);
    assert_eq!(future.stdout, "", "{future}");
}

#[test]
fn logs_rotate() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let script =
        "i=0; while [ $i -lt 400 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done";
    let run = host.hullctl_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--log-opt",
        "max-size=4k",
        "--log-opt",
        "max-file=3",
        &host.busybox,
        "sh",
        "-c",
        script,
    ]);
    let id = run.stdout.trim().to_owned();
    assert!(eventually(Duration::from_secs(10), || host.state(&id) == "exited"));
    let dir = host.container_dir(&id);
    let log = dir.join(format!("{id}-json.log"));
    for file in [
        log.clone(),
        dir.join(format!("{id}-json.log.1")),
        dir.join(format!("{id}-json.log.2")),
    ] {
        let size = std::fs::metadata(&file)
            .map(|m| m.len())
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        assert!(size <= 4096 + 200, "{} has {size} bytes", file.display());
    }
    assert!(
        !dir.join(format!("{id}-json.log.3")).exists(),
        "max-file=3 kept a fourth file"
    );
    let logs = host.hullctl_ok(&["logs", &id]);
    let last = logs.stdout.lines().last().unwrap_or_default();
    assert_eq!(last, "line-399-padding-padding-padding", "{logs}");
    let text = std::fs::read_to_string(&log).unwrap();
    let first = text.lines().next().unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(first).expect("json-file lines are JSON");
    assert!(
        record["log"]
            .as_str()
            .unwrap_or_default()
            .starts_with("line-"),
        "{first}"
    );
    assert_eq!(record["stream"], "stdout", "{first}");
}

#[test]
fn detached_rm_and_restart_on_failure() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let image = host.busybox.clone();
    host.hullctl_ok(&[
        "run",
        "-d",
        "--rm",
        "--network",
        "none",
        "--name",
        "brief",
        &image,
        "true",
    ]);
    assert!(
        eventually(Duration::from_secs(10), || host
            .hullctl_ok(&["ps", "-aq"])
            .stdout
            .is_empty()),
        "run -d --rm left the container"
    );

    host.hullctl_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        &image,
        "sh",
        "-c",
        "echo attempt; exit 1",
    ]);
    // The first run and two restarts each print once.
    assert!(
        eventually(Duration::from_secs(20), || {
            host.hullctl_ok(&["logs", "flaky"])
                .stdout
                .matches("attempt")
                .count()
                == 3
        }),
        "the restart policy did not run twice: {}",
        host.hullctl_ok(&["logs", "flaky"])
    );
    assert!(eventually(Duration::from_secs(10), || host.state("flaky") == "exited"));
    std::thread::sleep(Duration::from_millis(1500));
    let inspect = host.hullctl_ok(&["inspect", "flaky"]);
    let value: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(value[0]["RestartCount"], 2, "{inspect}");
    assert_eq!(
        value[0]["State"]["Status"], "exited",
        "restarted past the maximum: {inspect}"
    );
    assert_eq!(value[0]["State"]["ExitCode"], 1, "{inspect}");

    // A container stopped by the user stays stopped.
    host.hullctl_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "stopped",
        "--restart",
        "on-failure",
        &image,
        "sleep",
        "60",
    ]);
    host.hullctl_ok(&["stop", "-t", "1", "stopped"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(host.state("stopped"), "exited");
}

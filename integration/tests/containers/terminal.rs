//! `run -it` through a real pty, and `stop` of a container that ignores
//! SIGTERM.

use std::time::{Duration, Instant};

use hull_integration::containers::Host;
use hull_integration::pty::{read_until, write, PtySession};
use hull_integration::{require_root, require_tools};

#[test]
fn run_interactive_terminal() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let mut command = host.command(&[
        "run",
        "-it",
        "--rm",
        "--network",
        "none",
        &host.busybox,
        "sh",
    ]);
    command.env("TERM", "xterm");
    let mut session = PtySession::spawn(command);

    write(&session.master, "tty; echo marker-$((6 * 7))\r");
    let seen = read_until(&session.master, "marker-42", Duration::from_secs(20));
    assert!(
        seen.contains("marker-42"),
        "no shell output through the pty: {seen:?}"
    );
    assert!(
        seen.contains("/dev/pts/"),
        "the process has no terminal: {seen:?}"
    );

    // The first size the shell reads is hullctl's terminal's.
    write(&session.master, "echo size-$(stty size | tr ' ' x)\r");
    let seen = read_until(&session.master, "size-30x100", Duration::from_secs(20));
    assert!(
        seen.contains("size-30x100"),
        "the process's terminal has another size: {seen:?}"
    );

    write(&session.master, "exit 5\r");
    let code = session.wait(Duration::from_secs(20));
    assert_eq!(code, Some(5), "run -it did not pass the exit code");
    let listed = host.hullctl_ok(&["ps", "-aq"]);
    assert_eq!(listed.stdout, "", "--rm left a container: {listed}");
}

#[test]
fn stop_kills_after_timeout() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let script = "trap '' TERM; echo ready; while true; do sleep 0.1; done";
    host.hullctl_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "stubborn",
        &host.busybox,
        "sh",
        "-c",
        script,
    ]);
    assert!(host.wait_for_state("stubborn", "running", Duration::from_secs(5)));

    let started = Instant::now();
    host.hullctl_ok(&["stop", "-t", "2", "stubborn"]);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2),
        "stop returned after {elapsed:?}, before the timeout"
    );
    assert!(elapsed < Duration::from_secs(10), "stop took {elapsed:?}");
    assert_eq!(host.state("stubborn"), "exited");
    let inspect = host.hullctl_ok(&["inspect", "stubborn"]);
    let value: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(value[0]["State"]["ExitCode"], 137, "{inspect}");
}

//! hullctl killed at any point of `run`: `ps -a` shows what it left and
//! `rm -f` removes it, with no mount, shim or runtime state left over.

use std::process::Stdio;
use std::time::Duration;

use hull_integration::containers::Host;
use hull_integration::{require_root, require_tools};

#[test]
fn killed_run_leaves_removable_container() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    // Delays spread over a run that takes a few hundred milliseconds.
    for delay_ms in [5u64, 20, 40, 60, 80, 100, 130, 160, 200, 250, 300, 400] {
        let name = format!("crash{delay_ms}");
        let mut child = host
            .command(&[
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                &name,
                &host.busybox,
                "sleep",
                "60",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();

        let listed = host.hullctl_ok(&["ps", "-a", "--format", "{{.Names}}"]);
        let known = listed.stdout.lines().any(|line| line == name);
        let dir_entries = std::fs::read_dir(host.root().join("containers"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .count()
            })
            .unwrap_or(0);
        assert!(
            known || dir_entries == 0,
            "after a kill at {delay_ms} ms a container directory exists that ps does not show: {listed}"
        );
        if known {
            host.hullctl_ok(&["rm", "-f", &name]);
        }
        let after = host.hullctl_ok(&["ps", "-aq"]);
        assert_eq!(
            after.stdout, "",
            "rm -f left a container after a kill at {delay_ms} ms"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = host.root().display().to_string();
        assert!(
            !mounts
                .lines()
                .any(|line| line.contains(&format!("{root}/containers/"))),
            "a rootfs mount is left after a kill at {delay_ms} ms"
        );
    }
    let runtime = host.run_root().join("runtime/hullctl");
    let left: Vec<_> = std::fs::read_dir(&runtime)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "runtime state left: {left:?}");
    let images = host.hullctl_ok(&["check"]);
    assert!(images.success(), "{images}");
}

#[test]
fn concurrent_commands_keep_names_unique() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let children: Vec<_> = (0..5)
        .map(|_| {
            host.command(&[
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                "same",
                &host.busybox,
                "sleep",
                "60",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    let succeeded = outputs
        .iter()
        .filter(|output| output.status.success())
        .count();
    assert_eq!(succeeded, 1, "{outputs:?}");
    for output in outputs.iter().filter(|output| !output.status.success()) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("already in use"), "{stderr}");
    }
    let listed = host.hullctl_ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(listed.stdout, "same\n", "{listed}");

    // Two removals at once: both succeed and nothing is left.
    let removals: Vec<_> = (0..2)
        .map(|_| {
            host.command(&["rm", "-f", "same"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for removal in removals {
        let output = removal.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success() || stderr.contains("no such container"),
            "{stderr}"
        );
    }
    let listed = host.hullctl_ok(&["ps", "-aq"]);
    assert_eq!(listed.stdout, "", "{listed}");
}

#[test]
fn killed_foreground_run_is_finished_by_exit_command() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let mut child = host
        .command(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--name",
            "orphan",
            &host.busybox,
            "sleep",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(host.wait_for_state("orphan", "running", Duration::from_secs(10)));
    child.kill().unwrap();
    child.wait().unwrap();
    // The container goes on; when it exits, the logging program's exit
    // command finishes and removes it, since no hullctl is attached.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if host.hullctl_ok(&["ps", "-aq"]).stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("--rm was not applied: {}", host.hullctl_ok(&["ps", "-a"]));
}

//! Bad input: one clear error each, and nothing changed.

use hull_integration::containers::Host;
use hull_integration::{require_root, require_tools};

/// The container names and volume names that exist.
fn inventory(host: &Host) -> (String, String) {
    let containers = host
        .hullctl_ok(&["ps", "-a", "--format", "{{.Names}}"])
        .stdout;
    let volumes = host.hullctl_ok(&["volume", "ls", "-q"]).stdout;
    (containers, volumes)
}

#[test]
fn bad_input_changes_nothing() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let host = Host::new();
    let image = host.busybox.clone();
    host.hullctl_ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "taken",
        "-v",
        "busy:/data",
        &image,
        "sleep",
        "60",
    ]);
    host.hullctl_ok(&["run", "--network", "none", "--name", "done", &image, "true"]);
    let before = inventory(&host);

    let missing = format!("{}/test/absent:1", host.registry.host());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--rm", "--network", "none", &missing, "true"],
            "test/absent",
        ),
        (
            vec![
                "run",
                "--network",
                "none",
                "--name",
                "taken",
                &image,
                "true",
            ],
            "already in use",
        ),
        (
            vec![
                "run",
                "--network",
                "none",
                "--name",
                "bad/name",
                &image,
                "true",
            ],
            "invalid container name",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "--memory",
                "1m",
                &image,
                "true",
            ],
            "minimum memory limit",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "--memory",
                "lots",
                &image,
                "true",
            ],
            "invalid size",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "--cpus",
                "0",
                &image,
                "true",
            ],
            "--cpus",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "--restart",
                "always",
                &image,
                "true",
            ],
            "--restart",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "--security-opt",
                "apparmor=x",
                &image,
                "true",
            ],
            "--security-opt",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                "relative:dir",
                &image,
                "true",
            ],
            "relative",
        ),
        (vec!["exec", "done", "true"], "not running"),
        (vec!["exec", "nosuch", "true"], "no such container"),
        (vec!["volume", "rm", "busy"], "taken"),
        (vec!["stop", "nosuch"], "no such container"),
        (vec!["rm", "taken"], "running"),
        (vec!["kill", "done"], "not running"),
        (vec!["kill", "-s", "NOPE", "taken"], "invalid signal"),
    ];
    for (args, expected) in cases {
        let output = host.hullctl(&args);
        assert_ne!(output.code, Some(0), "{output}");
        assert!(
            output.signal.is_none(),
            "hullctl died by a signal: {output}"
        );
        let lines: Vec<&str> = output
            .stderr
            .lines()
            .filter(|line| !line.is_empty())
            .collect();
        assert!(
            lines.iter().any(|line| line.contains(expected)),
            "expected an error containing {expected:?}: {output}"
        );
        assert!(!output.stderr.contains("panicked"), "{output}");
        assert_eq!(
            inventory(&host),
            before,
            "{args:?} changed the containers or volumes"
        );
    }
}

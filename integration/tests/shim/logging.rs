//! Log URIs of `ctr run --log-uri`: `file://` and `binary://`.

use std::os::unix::fs::PermissionsExt;

use hull_integration::callers::BUSYBOX_IMAGE;
use hull_integration::{require_root, require_tools, unique_id};

use crate::fixture::{Binary, Fixture};
use crate::shim_test;

shim_test!(shim_binary_log_uri, binary_log_uri);
shim_test!(shim_binary_logger_failure, binary_logger_failure);
shim_test!(shim_file_log_uri, file_log_uri);

/// A logger that follows containerd's contract: it closes fd 5 once ready
/// and copies fds 3 and 4 into files in the directory of its `dir`
/// argument, next to its environment.
const LOGGER: &str = r#"#!/bin/sh
[ "$1" = dir ] || exit 2
dir=$2
/usr/bin/env > "$dir/env"
exec 5>&-
/bin/cat <&3 > "$dir/stdout" &
/bin/cat <&4 > "$dir/stderr" &
wait
"#;

fn binary_log_uri(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);
    let dir = tempfile::tempdir().unwrap();
    let logger = dir.path().join("logger");
    std::fs::write(&logger, LOGGER).unwrap();
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
    let uri = format!("binary://{}?dir={}", logger.display(), dir.path().display());

    let id = unique_id("shim");
    let output = fixture.run_ok(
        &["--rm", "--log-uri", &uri],
        &[
            BUSYBOX_IMAGE,
            &id,
            "sh",
            "-c",
            "echo to-stdout; echo to-stderr >&2",
        ],
    );
    assert_eq!(output.stdout, "", "{output}");
    fixture.assert_binary_used();

    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    assert_eq!(read("stdout"), "to-stdout\n");
    assert_eq!(read("stderr"), "to-stderr\n");
    let env = read("env");
    assert!(env.contains(&format!("CONTAINER_ID={id}\n")), "{env}");
    let namespace = format!("CONTAINER_NAMESPACE={}\n", fixture.containerd.namespace());
    assert!(env.contains(&namespace), "{env}");
}

fn binary_logger_failure(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);
    let id = unique_id("shim");
    let output = fixture.run(
        &["--rm", "--log-uri", "binary:///nonexistent/logger"],
        &[BUSYBOX_IMAGE, &id, "true"],
    );
    assert!(!output.success(), "{output}");
    assert!(output.stderr.contains("/nonexistent/logger"), "{output}");
    let _ = fixture.ctr(&["container", "delete", &id]);

    // The logger fails before the runtime runs, so a container without
    // a logger shows that the shim still runs the fixture's binary.
    let id = unique_id("shim");
    fixture.run_ok(&["--rm"], &[BUSYBOX_IMAGE, &id, "true"]);
    fixture.assert_binary_used();
}

fn file_log_uri(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci");
    let fixture = Fixture::start_with(binary);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("container.log");
    let uri = format!("file://{}", log.display());

    let id = unique_id("shim");
    fixture.run_ok(
        &["--rm", "--log-uri", &uri],
        &[
            BUSYBOX_IMAGE,
            &id,
            "sh",
            "-c",
            "echo to-stdout; sleep 0.1; echo to-stderr >&2",
        ],
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text, "to-stdout\nto-stderr\n");
    fixture.assert_binary_used();
}

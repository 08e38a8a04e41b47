//! A process with a terminal and a `binary://` stdout URI, driven over the
//! shim's gRPC socket without containerd: the logging program receives the
//! terminal's output on fd 3 and an empty stderr on fd 4.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::ShimServer;
use hull_integration::{require_root, unique_id, Bundle};
use hull_proto::containerd::task::v3::*;

/// A logger that closes fd 5 once ready, copies fd 4 to `<out>.stderr`
/// (which ends at once when fd 4 is empty) and then fd 3 to `<out>`.
const LOGGER: &str = r#"#!/bin/sh
[ "$1" = out ] || exit 2
exec 5>&-
/bin/cat <&4 > "$2.stderr"
exec /bin/cat <&3 > "$2"
"#;

#[tokio::test(flavor = "current_thread")]
async fn terminal_output_reaches_logger() {
    require_root!();
    let mut bundle = Bundle::busybox_sh("echo hello from a tty; tty");
    bundle.config["process"]["terminal"] = true.into();
    bundle.write();
    let dir = tempfile::tempdir().unwrap();
    let logger = dir.path().join("logger");
    std::fs::write(&logger, LOGGER).unwrap();
    std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A space in the query value checks the shim's percent-decoding.
    let out_dir = dir.path().join("log dir");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("out");
    let uri = format!(
        "binary://{}?out={}",
        logger.display(),
        out.display().to_string().replace(' ', "%20")
    );

    let id = unique_id("tty-log");
    let server = ShimServer::start(bundle.path(), &id);
    let mut client = server.client().await;
    client
        .create(CreateTaskRequest {
            id: id.clone(),
            bundle: bundle.path().display().to_string(),
            terminal: true,
            stdout: uri,
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .start(StartRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap();
    let wait = client.wait(WaitRequest {
        id: id.clone(),
        exec_id: String::new(),
    });
    let exit = tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("the container did not exit")
        .unwrap()
        .into_inner();
    assert_eq!(exit.exit_status, 0);
    // Delete waits until the logger has read the end of the output.
    client
        .delete(DeleteRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap();

    let output = std::fs::read_to_string(&out).unwrap();
    assert!(output.contains("hello from a tty"), "{output:?}");
    assert!(output.contains("/dev/pts/"), "{output:?}");
    let stderr = out_dir.join("out.stderr");
    assert_eq!(std::fs::read_to_string(stderr).unwrap(), "");
    client
        .shutdown(ShutdownRequest { id, now: false })
        .await
        .unwrap();
}

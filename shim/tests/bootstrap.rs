//! Plays containerd's side of the shim's `start` and `delete` actions.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use hull_integration::require_root;
use hull_proto::containerd::runtime::bootstrap::v1::{BootstrapParams, BootstrapResult, Extension};
use hull_proto::containerd::task::{v2, v3};
use hull_proto::ttrpc::{CallOptions, Client};
use prost::Message;

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-hull-v2");

/// Runs `SHIM ARGS` in `bundle` as containerd 1.6 does and returns its
/// output, which containerd reads until both streams close.
fn run_shim(
    bundle: &Path,
    containerd: &str,
    id: &str,
    env: &[(&str, &str)],
    action: &str,
) -> Output {
    run_shim_with_stdin(bundle, containerd, id, env, action, &[])
}

/// Runs `SHIM ARGS` as [`run_shim`] does, with `stdin` as its standard input.
fn run_shim_with_stdin(
    bundle: &Path,
    containerd: &str,
    id: &str,
    env: &[(&str, &str)],
    action: &str,
    stdin: &[u8],
) -> Output {
    let mut command = Command::new(SHIM);
    command
        .args(["-namespace", "hull-bootstrap", "-address", containerd])
        .args(["-publish-binary", "/bin/true", "-id", id, action])
        .current_dir(bundle)
        .env_remove("TTRPC_ADDRESS")
        .env_remove("MAX_SHIM_VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("failed to run the shim");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Returns the runtime options containerd sends:
/// `containerd.runc.v1.Options` naming `binary`.
fn runc_options(binary: &str) -> prost_types::Any {
    let options = hull_proto::containerd::runc::v1::Options {
        binary_name: binary.to_owned(),
        ..Default::default()
    };
    prost_types::Any {
        type_url: "containerd.runc.v1.Options".to_owned(),
        value: options.encode_to_vec(),
    }
}

fn write_config(bundle: &Path, group: Option<&str>) {
    let annotations = match group {
        Some(group) => serde_json::json!({ "io.containerd.runc.v2.group": group }),
        None => serde_json::json!({}),
    };
    let config = serde_json::json!({ "ociVersion": "1.0.2", "annotations": annotations });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
}

async fn shutdown(address: &str) {
    let client = Client::connect(address).await.unwrap();
    let task = v2::task_ttrpc::TaskClient::new(client);
    let options = CallOptions::with_timeout(Duration::from_secs(5));
    task.shutdown(
        &v2::ShutdownRequest {
            id: String::new(),
            now: false,
        },
        &options,
    )
    .await
    .unwrap();
    let path = address.trim_start_matches("unix://");
    for _ in 0..100 {
        if !Path::new(path).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the shim left its socket {path} after Shutdown");
}

#[tokio::test(flavor = "current_thread")]
async fn start_prints_address_and_reuses_group() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let containerd = dir.path().join("containerd.sock").display().to_string();
    let first = dir.path().join("a");
    let second = dir.path().join("b");
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    write_config(&first, Some("pod"));
    write_config(&second, Some("pod"));

    let output = run_shim(&first, &containerd, "a", &[], "start");
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let address = String::from_utf8(output.stdout).unwrap();
    assert!(address.starts_with("unix:///run/hull/s/"), "{address}");
    assert!(address.len() - "unix://".len() < 108, "{address}");
    let written = std::fs::read_to_string(first.join("address")).unwrap();
    assert_eq!(written, address);

    let client = Client::connect(&address).await.unwrap();
    let task = v3::task_ttrpc::TaskClient::new(client);
    let options = CallOptions::with_timeout(Duration::from_secs(5));
    let connected = task
        .connect(&v3::ConnectRequest { id: "a".into() }, &options)
        .await
        .unwrap();
    assert!(connected.shim_pid > 0);
    assert_ne!(connected.shim_pid, std::process::id());

    let output = run_shim(&second, &containerd, "b", &[], "start");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), address);
    assert_eq!(
        std::fs::read_to_string(second.join("address")).unwrap(),
        address
    );

    shutdown(&address).await;
}

#[tokio::test(flavor = "current_thread")]
async fn start_prints_json_for_shim_version_3() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let containerd = dir.path().join("containerd.sock").display().to_string();
    write_config(dir.path(), None);
    let output = run_shim(
        dir.path(),
        &containerd,
        "v3",
        &[("MAX_SHIM_VERSION", "3")],
        "start",
    );
    assert!(output.status.success(), "{output:?}");
    let result: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(result["version"], 3);
    assert_eq!(result["protocol"], "ttrpc");
    let address = result["address"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("address")).unwrap(),
        address
    );
    shutdown(&address).await;
}

#[tokio::test(flavor = "current_thread")]
async fn start_prints_plain_address_for_shim_version_2() {
    // containerd 1.7 sets MAX_SHIM_VERSION=2 and sends the options as an Any.
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let containerd = dir.path().join("containerd.sock").display().to_string();
    write_config(dir.path(), None);
    let output = run_shim_with_stdin(
        dir.path(),
        &containerd,
        "v2",
        &[("MAX_SHIM_VERSION", "2")],
        "start",
        &runc_options("hull").encode_to_vec(),
    );
    assert!(output.status.success(), "{output:?}");
    let address = String::from_utf8(output.stdout).unwrap();
    assert!(address.starts_with("unix:///run/hull/s/"), "{address}");
    shutdown(&address).await;
}

#[tokio::test(flavor = "current_thread")]
async fn start_answers_bootstrap_params_with_a_bootstrap_result() {
    // containerd 2.3 and later: protobuf BootstrapParams on stdin, the
    // options inside as an extension, a protobuf BootstrapResult back.
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let containerd = dir.path().join("containerd.sock").display().to_string();
    let sockets = dir.path().join("s");
    write_config(dir.path(), None);
    let params = BootstrapParams {
        instance_id: "boot".into(),
        namespace: "hull-bootstrap".into(),
        containerd_version: "2.3.0".into(),
        containerd_ttrpc_address: format!("{containerd}.ttrpc"),
        containerd_grpc_address: containerd.clone(),
        containerd_binary: "/usr/bin/containerd".into(),
        socket_dir: Some(sockets.display().to_string()),
        extensions: vec![Extension {
            value: Some(runc_options("hull")),
        }],
        ..Default::default()
    };
    let output = run_shim_with_stdin(
        dir.path(),
        &containerd,
        "boot",
        &[("MAX_SHIM_VERSION", "3")],
        "start",
        &params.encode_to_vec(),
    );
    assert!(output.status.success(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let result = BootstrapResult::decode(output.stdout.as_slice()).unwrap();
    assert_eq!(result.version, 3);
    assert_eq!(result.protocol, "ttrpc");
    let prefix = format!("unix://{}/", sockets.display());
    assert!(result.address.starts_with(&prefix), "{}", result.address);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("address")).unwrap(),
        result.address
    );

    let client = Client::connect(&result.address).await.unwrap();
    let task = v3::task_ttrpc::TaskClient::new(client);
    let options = CallOptions::with_timeout(Duration::from_secs(5));
    let connected = task
        .connect(&v3::ConnectRequest { id: "boot".into() }, &options)
        .await
        .unwrap();
    assert!(connected.shim_pid > 0);
    shutdown(&result.address).await;
}

#[test]
fn start_rejects_invalid_stdin() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let containerd = dir.path().join("containerd.sock").display().to_string();
    write_config(dir.path(), None);
    let output = run_shim_with_stdin(
        dir.path(),
        &containerd,
        "bad",
        &[],
        "start",
        b"\xff\xff\xff",
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("invalid runtime options on stdin"),
        "{output:?}"
    );
}

#[test]
fn delete_prints_a_delete_response() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), None);
    let mut command = Command::new(SHIM);
    command
        .args(["-namespace", "hull-bootstrap", "-address", "/dev/null"])
        .args(["-publish-binary", "/bin/true", "-id", "gone"])
        .arg("-bundle")
        .arg(dir.path())
        .arg("delete")
        .current_dir(dir.path());
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let response = v3::DeleteResponse::decode(output.stdout.as_slice()).unwrap();
    assert_eq!(response.exit_status, 137);
    assert!(response.exited_at.is_some());
}

#[test]
fn info_and_version_flags() {
    let output = Command::new(SHIM).arg("-v").output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("containerd-shim-hull-v2"));
    let output = Command::new(SHIM).arg("-info").output().unwrap();
    assert!(output.status.success());
    assert!(!output.stdout.is_empty());
    let output = Command::new(SHIM).arg("-bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

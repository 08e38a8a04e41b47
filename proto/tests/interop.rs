//! Interoperability with the Go ttrpc of containerd 1.6, through the
//! installed `ctr` and `containerd` binaries. Each test prints a note and
//! passes without checking anything when the binaries are not installed.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hull_proto::containerd::events::TaskExit;
use hull_proto::containerd::task::v2::task_ttrpc;
use hull_proto::events::Publisher;
use hull_proto::ttrpc::{listener_from_fd, Code, Server};

fn find_binary(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file())
}

/// Kills and reaps a child process when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ctr shim` (Go ttrpc 1.1 client) calls the task service of this crate.
///
/// ctr looks for the shim socket at /run/containerd/s/<hash> and then at the
/// abstract address "\0/containerd-shim/<namespace>/<id>/shim.sock", which
/// this test binds, so no file is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_client_calls_task_service() {
    let Some(ctr) = find_binary("ctr") else {
        eprintln!("ctr is not installed; skipping the Go ttrpc client check");
        return;
    };
    let namespace = "hull-proto-test";
    let id = format!("interop-{}", std::process::id());
    // Go's net.Dial counts a terminating NUL into an abstract address that it
    // is given with a leading NUL (seen with strace on ctr 1.6.20), so the
    // bound name ends with one.
    let name = format!("/containerd-shim/{namespace}/{id}/shim.sock\0");
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let std_listener = std::os::unix::net::UnixListener::bind_addr(&address).unwrap();
    let listener = listener_from_fd(OwnedFd::from(std_listener)).unwrap();

    let mut server = Server::new();
    server
        .register(task_ttrpc::service(common::FakeTask::new()))
        .unwrap();
    let serving = tokio::spawn(server.serve(listener));

    let run_ctr = |command: &'static str| {
        let ctr = ctr.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(ctr)
                .args(["--address", "/nonexistent/hull-proto-test.sock"])
                .args(["--namespace", namespace, "shim", "--id", &id, command])
                .output()
                .unwrap()
        })
    };

    let output = run_ctr("state").await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ctr shim state failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(&format!("\"id\": \"{id}\"")), "{stdout}");
    assert!(stdout.contains("\"pid\": 4242"), "{stdout}");
    assert!(stdout.contains("\"bundle\": \"/run/bundle\""), "{stdout}");

    let output = run_ctr("delete").await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("Delete is not implemented"), "{stderr}");

    serving.abort();
}

/// Writes a containerd configuration that keeps every path inside `dir`.
fn write_containerd_config(dir: &Path) -> PathBuf {
    let config = format!(
        r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        socket = dir.join("c.sock").display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn wait_for_path(path: &Path, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The event publisher forwards to containerd's Go ttrpc server, and
/// `ctr events` decodes the event, which shows that containerd 1.6 resolves
/// the event's type URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_forwards_to_containerd() {
    let (Some(containerd), Some(ctr)) = (find_binary("containerd"), find_binary("ctr")) else {
        eprintln!("containerd or ctr is not installed; skipping the Go ttrpc server check");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_containerd_config(dir.path());
    let socket = dir.path().join("c.sock");
    let ttrpc_socket = dir.path().join("c.sock.ttrpc");

    let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
    let _daemon = ChildGuard(
        Command::new(containerd)
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let started = wait_for_path(&ttrpc_socket, Duration::from_secs(20));
    let log_text = || std::fs::read_to_string(dir.path().join("containerd.log")).unwrap();
    assert!(started, "containerd did not start:\n{}", log_text());

    let mut events = ChildGuard(
        Command::new(ctr)
            .arg("--address")
            .arg(&socket)
            .arg("events")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (lines, received) = mpsc::channel();
    let stdout = events.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let publisher = Publisher::new(format!("unix://{}", ttrpc_socket.display()));
    let event = TaskExit {
        container_id: "hull-interop".into(),
        id: "hull-interop".into(),
        pid: 99,
        exit_status: 3,
        exited_at: Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
    };

    // ctr subscribes asynchronously, so publish until an event shows up.
    let mut seen = None;
    for _ in 0..50 {
        publisher.publish("hull-test", &event).await.unwrap();
        if let Ok(line) = received.recv_timeout(Duration::from_millis(200)) {
            seen = Some(line);
            break;
        }
    }
    let line = seen.unwrap_or_else(|| panic!("ctr events printed nothing:\n{}", log_text()));
    assert!(line.contains("hull-test /tasks/exit"), "{line}");
    assert!(line.contains("\"container_id\":\"hull-interop\""), "{line}");
    assert!(line.contains("\"exit_status\":3"), "{line}");

    // containerd rejects an invalid namespace; the Go server's status decodes.
    let error = publisher
        .publish("bad namespace!", &event)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument, "{error}");
}

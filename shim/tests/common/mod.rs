//! A shim server started with `-socket` for the tests that drive the shim
//! without containerd.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hull_integration::callers::unmount_under;
use hull_integration::{hull_binary, unique_id};
use hull_proto::containerd::task::v3::task_client::TaskClient;
use tonic::transport::Channel;

pub const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-hull-v2");

/// hull's state directory for the test namespace: the shim's default,
/// `/run/containerd/hull/<namespace>`.
pub const RUNTIME_ROOT: &str = "/run/containerd/hull/hull-grpc-test";

/// A shim server started with `-socket`, killed on drop if still running.
pub struct ShimServer {
    child: Child,
    socket: PathBuf,
    id: String,
    bundle: PathBuf,
}

impl ShimServer {
    /// Starts the shim without an events address, so it publishes nothing.
    pub fn start(bundle: &Path, id: &str) -> ShimServer {
        ShimServer::start_with_events(bundle, id, None)
    }

    /// Starts the shim, publishing events to the ttrpc socket at
    /// `events_address` when given.
    pub fn start_with_events(bundle: &Path, id: &str, events_address: Option<&Path>) -> ShimServer {
        let socket = PathBuf::from(format!("/run/hull/s/test-{}", unique_id("grpc")));
        std::fs::create_dir_all("/run/hull/s").unwrap();
        let mut command = Command::new(SHIM);
        command
            .args([
                "-namespace",
                "hull-grpc-test",
                "-id",
                id,
                "-address",
                "/dev/null",
            ])
            .arg("-socket")
            .arg(&socket)
            .current_dir(bundle)
            .stdin(Stdio::null());
        match events_address {
            Some(address) => command.env("TTRPC_ADDRESS", address),
            None => command.env_remove("TTRPC_ADDRESS"),
        };
        let child = command.spawn().expect("failed to start the shim");
        ShimServer {
            child,
            socket,
            id: id.to_owned(),
            bundle: bundle.to_path_buf(),
        }
    }

    /// Returns the path of the ttrpc socket.
    pub fn ttrpc_socket(&self) -> &Path {
        &self.socket
    }

    /// Returns the path of the gRPC socket.
    pub fn grpc_socket(&self) -> String {
        format!("{}.grpc", self.socket.display())
    }

    /// Returns the shim's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns true while the shim process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits until the shim accepts gRPC connections.
    pub async fn channel(&self) -> Channel {
        let grpc = self.grpc_socket();
        for _ in 0..100 {
            if let Ok(channel) = hull_proto::grpc::connect_unix(&grpc).await {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the shim did not listen on {grpc}");
    }

    pub async fn client(&self) -> TaskClient<Channel> {
        TaskClient::new(self.channel().await)
    }
}

impl Drop for ShimServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(format!("{}.grpc", self.socket.display()));
        // A failed test can leave its container and rootfs mount behind.
        let root = Path::new(RUNTIME_ROOT);
        let _ = Command::new(hull_binary())
            .arg("--root")
            .arg(root)
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
        unmount_under(&self.bundle);
        let _ = std::fs::remove_dir(root);
    }
}

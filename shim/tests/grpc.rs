//! Drives the shim over its gRPC socket without containerd: create, start,
//! exec, wait and delete a busybox container, and the errors of bad ids.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hull_integration::callers::unmount_under;
use hull_integration::fixtures::busybox_rootfs;
use hull_integration::{hull_binary, require_root, unique_id, Bundle};
use hull_proto::containerd::task::v3::task_client::TaskClient;
use hull_proto::containerd::task::v3::*;
use hull_proto::containerd::types::Mount;
use hull_proto::containerd::v1::types::Status;
use hull_proto::io::containerd::cgroups::v1;
use tonic::transport::Channel;
use tonic::Code;

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-hull-v2");

/// hull's state directory for the test namespace: the shim's default,
/// `/run/containerd/hull/<namespace>`.
const RUNTIME_ROOT: &str = "/run/containerd/hull/hull-grpc-test";

/// A shim server started with `-socket`, killed on drop if still running.
struct ShimServer {
    child: Child,
    socket: PathBuf,
    id: String,
    bundle: PathBuf,
}

impl ShimServer {
    fn start(bundle: &Path, id: &str) -> ShimServer {
        let socket = PathBuf::from(format!("/run/hull/s/test-{}", unique_id("grpc")));
        std::fs::create_dir_all("/run/hull/s").unwrap();
        let child = Command::new(SHIM)
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
            .env_remove("TTRPC_ADDRESS")
            .stdin(Stdio::null())
            .spawn()
            .expect("failed to start the shim");
        ShimServer {
            child,
            socket,
            id: id.to_owned(),
            bundle: bundle.to_path_buf(),
        }
    }

    async fn client(&self) -> TaskClient<Channel> {
        let grpc = format!("{}.grpc", self.socket.display());
        for _ in 0..100 {
            if let Ok(channel) = hull_proto::grpc::connect_unix(&grpc).await {
                return TaskClient::new(channel);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the shim did not listen on {grpc}");
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

fn exec_spec(args: &[&str]) -> prost_types::Any {
    let process = serde_json::json!({
        "args": args,
        "cwd": "/",
        "env": ["PATH=/bin:/usr/bin"],
        "user": { "uid": 0, "gid": 0 },
    });
    prost_types::Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
        value: process.to_string().into_bytes(),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn grpc_create_exec_wait_delete() {
    require_root!();
    let mut bundle =
        Bundle::busybox_sh("trap 'exit 7' TERM; echo out; while true; do sleep 0.1; done");
    // The shim bind-mounts the fixture at <bundle>/rootfs from the request.
    bundle.config["root"]["path"] = "rootfs".into();
    bundle.config["root"]["readonly"] = true.into();
    bundle.write();
    let output = bundle.path().join("stdout.log");
    let id = unique_id("grpc");
    let server = ShimServer::start(bundle.path(), &id);
    let mut client = server.client().await;

    let create = CreateTaskRequest {
        id: id.clone(),
        bundle: bundle.path().display().to_string(),
        rootfs: vec![Mount {
            r#type: "bind".into(),
            source: busybox_rootfs().display().to_string(),
            target: String::new(),
            options: vec!["rbind".into(), "ro".into()],
        }],
        stdout: format!("file://{}", output.display()),
        ..Default::default()
    };
    let created = client.create(create.clone()).await.unwrap().into_inner();
    assert!(created.pid > 0);
    let duplicate = client.create(create).await.unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists, "{duplicate}");

    let state = client
        .state(StateRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state.status, Status::Created as i32);
    assert_eq!(state.pid, created.pid);

    let started = client
        .start(StartRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.pid, created.pid);

    let exec = ExecProcessRequest {
        id: id.clone(),
        exec_id: "e1".into(),
        spec: Some(exec_spec(&["sh", "-c", "exit 4"])),
        ..Default::default()
    };
    client.exec(exec.clone()).await.unwrap();
    let duplicate = client.exec(exec).await.unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists, "{duplicate}");
    client
        .start(StartRequest {
            id: id.clone(),
            exec_id: "e1".into(),
        })
        .await
        .unwrap();
    let exec_exit = client
        .wait(WaitRequest {
            id: id.clone(),
            exec_id: "e1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exec_exit.exit_status, 4);
    let deleted = client
        .delete(DeleteRequest {
            id: id.clone(),
            exec_id: "e1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.exit_status, 4);

    let pids = client
        .pids(PidsRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(
        pids.processes
            .iter()
            .any(|process| process.pid == created.pid),
        "{pids:?}"
    );

    let resources = serde_json::json!({ "memory": { "limit": 67108864 } });
    client
        .update(UpdateTaskRequest {
            id: id.clone(),
            resources: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: resources.to_string().into_bytes(),
            }),
            annotations: Default::default(),
        })
        .await
        .unwrap();
    let stats = client
        .stats(StatsRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let metrics = hull_proto::events::from_any::<v1::Metrics>(&stats)
        .expect("the stats are not cgroup v1 metrics")
        .unwrap();
    let memory = metrics.memory.unwrap().usage.unwrap();
    assert_eq!(memory.limit, 67108864);
    assert!(memory.usage > 0);

    // The init process traps SIGTERM and exits with 7.
    client
        .kill(KillRequest {
            id: id.clone(),
            exec_id: String::new(),
            signal: 15,
            all: false,
        })
        .await
        .unwrap();
    let exit = client
        .wait(WaitRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(exit.exit_status, 7);
    let deleted = client
        .delete(DeleteRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.exit_status, 7);
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "out\n");
    assert!(
        std::fs::read_dir(bundle.path().join("rootfs"))
            .unwrap()
            .next()
            .is_none(),
        "the rootfs is still mounted after Delete"
    );

    let gone = client
        .state(StateRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone}");
    client
        .shutdown(ShutdownRequest {
            id: id.clone(),
            now: false,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn grpc_unknown_ids_are_not_found() {
    require_root!();
    let bundle = Bundle::busybox(&["true"]);
    bundle.write();
    let server = ShimServer::start(bundle.path(), "none");
    let mut client = server.client().await;
    let missing = "missing".to_owned();
    let checks = [
        client
            .state(StateRequest {
                id: missing.clone(),
                exec_id: String::new(),
            })
            .await
            .map(drop),
        client
            .start(StartRequest {
                id: missing.clone(),
                exec_id: String::new(),
            })
            .await
            .map(drop),
        client
            .kill(KillRequest {
                id: missing.clone(),
                exec_id: String::new(),
                signal: 9,
                all: false,
            })
            .await
            .map(drop),
        client
            .delete(DeleteRequest {
                id: missing.clone(),
                exec_id: String::new(),
            })
            .await
            .map(drop),
        client
            .wait(WaitRequest {
                id: missing.clone(),
                exec_id: String::new(),
            })
            .await
            .map(drop),
        client
            .pids(PidsRequest {
                id: missing.clone(),
            })
            .await
            .map(drop),
    ];
    for (index, result) in checks.into_iter().enumerate() {
        let error = result.expect_err("a request for an unknown id succeeded");
        assert_eq!(error.code(), Code::NotFound, "request {index}: {error}");
    }
    let empty = client
        .create(CreateTaskRequest::default())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument, "{empty}");
}

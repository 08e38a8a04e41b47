//! Drives the shim over its gRPC socket without containerd: create, start,
//! exec, wait and delete a busybox container, and the errors of bad ids.

mod common;

use common::ShimServer;
use hull_integration::fixtures::busybox_rootfs;
use hull_integration::{require_root, unique_id, Bundle};
use hull_proto::containerd::task::v3::*;
use hull_proto::containerd::types::Mount;
use hull_proto::containerd::v1::types::Status;
use hull_proto::io::containerd::cgroups::v1;
use tonic::Code;

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
    let unknown = || "no-such-exec".to_owned();
    let checks = [
        client
            .state(StateRequest {
                id: id.clone(),
                exec_id: unknown(),
            })
            .await
            .map(drop),
        client
            .start(StartRequest {
                id: id.clone(),
                exec_id: unknown(),
            })
            .await
            .map(drop),
        client
            .kill(KillRequest {
                id: id.clone(),
                exec_id: unknown(),
                signal: 9,
                all: false,
            })
            .await
            .map(drop),
        client
            .delete(DeleteRequest {
                id: id.clone(),
                exec_id: unknown(),
            })
            .await
            .map(drop),
        client
            .wait(WaitRequest {
                id: id.clone(),
                exec_id: unknown(),
            })
            .await
            .map(drop),
        client
            .resize_pty(ResizePtyRequest {
                id: id.clone(),
                exec_id: unknown(),
                width: 80,
                height: 24,
            })
            .await
            .map(drop),
        client
            .close_io(CloseIoRequest {
                id: id.clone(),
                exec_id: unknown(),
                stdin: true,
            })
            .await
            .map(drop),
    ];
    for (index, result) in checks.into_iter().enumerate() {
        let error = result.expect_err("a request for an unknown exec id succeeded");
        assert_eq!(error.code(), Code::NotFound, "request {index}: {error}");
    }
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

#[tokio::test]
async fn sigterm_removes_sockets() {
    require_root!();
    let bundle = tempfile::tempdir().unwrap();
    let mut shim = ShimServer::start(bundle.path(), &unique_id("sigterm"));
    let _ = shim.channel().await;
    let ttrpc = shim.ttrpc_socket().to_path_buf();
    let grpc = std::path::PathBuf::from(shim.grpc_socket());
    assert!(ttrpc.exists());
    assert!(grpc.exists());
    // SAFETY: kill sends a signal to the shim this test started.
    assert_eq!(unsafe { libc::kill(shim.pid() as i32, libc::SIGTERM) }, 0);
    for _ in 0..250 {
        if !shim.is_running() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!shim.is_running(), "the shim still runs 5 s after SIGTERM");
    assert!(!ttrpc.exists(), "{} is left", ttrpc.display());
    assert!(!grpc.exists(), "{} is left", grpc.display());
}

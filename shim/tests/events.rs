//! Events that the shim publishes to containerd's ttrpc Events service,
//! played here by a recorder in the test.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ShimServer;
use hull_integration::fixtures::busybox_rootfs;
use hull_integration::{require_root, unique_id, Bundle};
use hull_proto::containerd::services::events::ttrpc::v1::{
    events_server::Events, events_ttrpc, ForwardRequest,
};
use hull_proto::containerd::task::v3::*;
use hull_proto::containerd::types::Mount;
use hull_proto::ttrpc::{bind, Server};

/// Records the topics of forwarded events.
#[derive(Default)]
struct Recorder {
    topics: Mutex<Vec<String>>,
}

#[tonic::async_trait]
impl Events for Recorder {
    async fn forward(
        &self,
        request: tonic::Request<ForwardRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        if let Some(envelope) = request.into_inner().envelope {
            self.topics.lock().unwrap().push(envelope.topic);
        }
        Ok(tonic::Response::new(()))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn events_retried_until_containerd_listens() {
    require_root!();
    // A hang fails the test instead of stalling the suite, and dropping the
    // body stops the shim and removes the bundle.
    tokio::time::timeout(Duration::from_secs(60), retried_events())
        .await
        .expect("the shim did not deliver the events within 60 s");
}

async fn retried_events() {
    let mut bundle = Bundle::busybox_sh("trap 'exit 7' TERM; while true; do sleep 0.1; done");
    bundle.config["root"]["path"] = "rootfs".into();
    bundle.config["root"]["readonly"] = true.into();
    bundle.write();
    let events_dir = tempfile::tempdir().unwrap();
    let events_socket = events_dir.path().join("events.sock");
    let id = unique_id("events");
    let server = ShimServer::start_with_events(bundle.path(), &id, Some(&events_socket));
    let mut client = server.client().await;

    // Nothing listens on the events socket yet, so the shim's first
    // attempt to publish TaskCreate fails.
    client
        .create(CreateTaskRequest {
            id: id.clone(),
            bundle: bundle.path().display().to_string(),
            rootfs: vec![Mount {
                r#type: "bind".into(),
                source: busybox_rootfs().display().to_string(),
                target: String::new(),
                options: vec!["rbind".into(), "ro".into()],
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let recorder = Arc::new(Recorder::default());
    let mut events = Server::new();
    events
        .register(events_ttrpc::service(recorder.clone()))
        .unwrap();
    let listener = bind(&events_socket).unwrap();
    let events_task = tokio::spawn(events.serve(listener));

    client
        .start(StartRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap();
    client
        .kill(KillRequest {
            id: id.clone(),
            exec_id: String::new(),
            signal: 15,
            all: false,
        })
        .await
        .unwrap();
    client
        .wait(WaitRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap();
    client
        .delete(DeleteRequest {
            id: id.clone(),
            exec_id: String::new(),
        })
        .await
        .unwrap();

    let expected = [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exit",
        "/tasks/delete",
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorder.topics.lock().unwrap().len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    events_task.abort();
    assert_eq!(*recorder.topics.lock().unwrap(), expected);
}

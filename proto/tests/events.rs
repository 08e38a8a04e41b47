//! Event envelopes and the publisher against a ttrpc Events service of this
//! crate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hull_proto::containerd::events::{TaskExit, TaskOom, TaskStart};
use hull_proto::containerd::services::events::ttrpc::v1::{
    events_server::Events, events_ttrpc, ForwardRequest,
};
use hull_proto::events::{envelope, from_any, to_any, Publisher, TaskEvent};
use hull_proto::ttrpc::{bind, Code, Server};

#[derive(Default)]
struct Recorder {
    forwarded: Mutex<Vec<(Option<String>, ForwardRequest)>>,
}

#[tonic::async_trait]
impl Events for Recorder {
    async fn forward(
        &self,
        request: tonic::Request<ForwardRequest>,
    ) -> Result<tonic::Response<()>, tonic::Status> {
        let namespace = hull_proto::grpc::namespace(&request);
        let request = request.into_inner();
        if request
            .envelope
            .as_ref()
            .is_some_and(|e| e.topic.is_empty())
        {
            return Err(tonic::Status::invalid_argument("empty topic"));
        }
        self.forwarded.lock().unwrap().push((namespace, request));
        Ok(tonic::Response::new(()))
    }
}

#[test]
fn any_uses_bare_type_name() {
    let event = TaskStart {
        container_id: "c".into(),
        pid: 1,
    };
    let any = to_any(&event);
    assert_eq!(any.type_url, "containerd.events.TaskStart");
    assert_eq!(from_any::<TaskStart>(&any).unwrap().unwrap(), event);
    assert!(from_any::<TaskExit>(&any).is_none());

    let prefixed = prost_types::Any {
        type_url: "type.googleapis.com/containerd.events.TaskStart".into(),
        value: any.value.clone(),
    };
    assert_eq!(from_any::<TaskStart>(&prefixed).unwrap().unwrap(), event);
}

#[test]
fn envelope_carries_topic() {
    let event = TaskOom {
        container_id: "c".into(),
    };
    let envelope = envelope("default", &event);
    assert_eq!(envelope.topic, "/tasks/oom");
    assert_eq!(TaskOom::TOPIC, "/tasks/oom");
    assert_eq!(envelope.namespace, "default");
    assert!(envelope.timestamp.is_some());
    assert_eq!(
        envelope.event.unwrap().type_url,
        "containerd.events.TaskOOM"
    );
}

#[tokio::test]
async fn publisher_forwards_and_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sock");
    let recorder = Arc::new(Recorder::default());

    let start_server = |recorder: Arc<Recorder>| {
        let listener = bind(&path).unwrap();
        let mut server = Server::new();
        server.register(events_ttrpc::service(recorder)).unwrap();
        tokio::spawn(server.serve(listener))
    };

    let serving = start_server(Arc::clone(&recorder));
    let publisher = Publisher::new(path.to_str().unwrap()).with_timeout(Duration::from_secs(10));
    let exit = TaskExit {
        container_id: "c1".into(),
        id: "c1".into(),
        pid: 10,
        exit_status: 137,
        exited_at: None,
    };
    publisher.publish("k8s.io", &exit).await.unwrap();

    // A new server on the same path: the publisher finds its connection
    // closed and reconnects once.
    serving.abort();
    let _ = serving.await;
    std::fs::remove_file(&path).unwrap();
    let serving = start_server(Arc::clone(&recorder));
    publisher.publish("k8s.io", &exit).await.unwrap();

    let forwarded = recorder.forwarded.lock().unwrap().clone();
    assert_eq!(forwarded.len(), 2);
    for (namespace, request) in forwarded {
        assert_eq!(namespace.as_deref(), Some("k8s.io"));
        let envelope = request.envelope.unwrap();
        assert_eq!(envelope.topic, "/tasks/exit");
        let decoded: TaskExit = from_any(&envelope.event.unwrap()).unwrap().unwrap();
        assert_eq!(decoded, exit);
    }

    let mut bad = envelope("k8s.io", &exit);
    bad.topic.clear();
    let error = publisher.forward(bad).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    serving.abort();
}

#[tokio::test]
async fn publisher_without_server_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let publisher = Publisher::new(dir.path().join("absent.sock").to_str().unwrap());
    let error = publisher
        .publish("default", &TaskOom::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(error.message().contains("absent.sock"), "{error}");
}

//! ttrpc server and client over unix sockets in temporary directories.

mod common;

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use hull_proto::containerd::task::v2::{self as task, task_ttrpc};
use hull_proto::ttrpc::frame::{read_frame, Frame, FrameHeader, MessageType, MAX_DATA_LEN};
use hull_proto::ttrpc::{
    bind, listener_from_fd, wire, CallOptions, Client, Code, Server, Service, Status,
};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ECHO: &str = "hull.test.Echo";

/// A service whose methods take and return `google.protobuf.StringValue`
/// (prost's `String`).
fn echo_service() -> Service {
    let mut service = Service::new(ECHO);
    service.add_method("Echo", |_, request: String| async move { Ok(request) });
    service.add_method("Fail", |_, request: String| async move {
        Err::<String, _>(Status::failed_precondition(format!("refused {request}")))
    });
    service.add_method("Sleep", |_, _: String| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(String::new())
    });
    service.add_method("Panic", |_, _: String| async move {
        if true {
            panic!("handler failure for the panic test");
        }
        Ok(String::new())
    });
    service.add_method("Metadata", |context, _: String| async move {
        let mut pairs: Vec<String> = context
            .metadata
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        pairs.push(format!("deadline={}", context.deadline.is_some()));
        Ok(pairs.join(","))
    });
    service
}

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), hull_proto::ttrpc::ServerError>>,
}

impl Harness {
    fn start(services: Vec<Service>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ttrpc.sock");
        let listener = bind(&path).unwrap();
        let mut server = Server::new();
        for service in services {
            server.register(service).unwrap();
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(server.serve_with_shutdown(listener, async {
            let _ = stopped.await;
        }));
        Self {
            _dir: dir,
            path,
            stop: Some(stop),
            server,
        }
    }

    async fn client(&self) -> Client {
        Client::connect(self.path.to_str().unwrap()).await.unwrap()
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("server did not shut down")
            .unwrap()
            .unwrap();
    }
}

fn options() -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(10))
}

#[tokio::test]
async fn unary_success() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    let reply: String = client
        .unary(ECHO, "Echo", &"hello".to_owned(), &options())
        .await
        .unwrap();
    assert_eq!(reply, "hello");
    harness.shutdown().await;
}

#[tokio::test]
async fn error_status_returned() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    let error = client
        .unary::<String, String>(ECHO, "Fail", &"x".to_owned(), &options())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(error.message(), "refused x");
    harness.shutdown().await;
}

#[tokio::test]
async fn unknown_service_unimplemented() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    let error = client
        .call("hull.test.Missing", "Echo", Vec::new(), &options())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
    assert!(error.message().contains("hull.test.Missing"), "{error}");
    harness.shutdown().await;
}

#[tokio::test]
async fn unknown_method_unimplemented() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    let error = client
        .call(ECHO, "Nope", Vec::new(), &options())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
    assert!(error.message().contains("Nope"), "{error}");
    harness.shutdown().await;
}

#[tokio::test]
async fn malformed_payload_invalid_argument() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    // Field 1 as length-delimited with a length beyond the buffer.
    let error = client
        .call(ECHO, "Echo", vec![0x0a, 0x20, 0x01], &options())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    harness.shutdown().await;
}

#[tokio::test]
async fn metadata_and_deadline_reach_handler() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    let mut call_options = options();
    call_options
        .metadata
        .insert("Containerd-Namespace-Ttrpc", "k8s.io");
    call_options.metadata.append("multi", "a");
    call_options.metadata.append("multi", "b");
    let reply: String = client
        .unary(ECHO, "Metadata", &String::new(), &call_options)
        .await
        .unwrap();
    assert_eq!(
        reply,
        "containerd-namespace-ttrpc=k8s.io,multi=a,multi=b,deadline=true"
    );
    harness.shutdown().await;
}

#[tokio::test]
async fn timeout_deadline_exceeded() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    let started = std::time::Instant::now();
    let error = client
        .call(
            ECHO,
            "Sleep",
            Vec::new(),
            &CallOptions::with_timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection stays usable after a timed-out call.
    let reply: String = client
        .unary(ECHO, "Echo", &"after".to_owned(), &options())
        .await
        .unwrap();
    assert_eq!(reply, "after");
    harness.shutdown().await;
}

#[tokio::test]
async fn concurrent_calls_one_connection() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    // A call that blocks must not hold up the others on the connection.
    let blocked = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call(ECHO, "Sleep", Vec::new(), &CallOptions::default())
                .await
        })
    };
    let mut calls = Vec::new();
    for i in 0..32 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            client
                .unary::<String, String>(ECHO, "Echo", &format!("m{i}"), &options())
                .await
        }));
    }
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), format!("m{i}"));
    }
    blocked.abort();
    drop(client);
    // Shutdown waits for the Sleep call only while its client is connected.
    harness.shutdown().await;
}

#[tokio::test]
async fn client_disconnect_mid_call() {
    let harness = Harness::start(vec![echo_service()]);
    let first = harness.client().await;
    let pending = tokio::spawn(async move {
        first
            .call(ECHO, "Sleep", Vec::new(), &CallOptions::default())
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    pending.abort();
    let _ = pending.await;

    let second = harness.client().await;
    let reply: String = second
        .unary(ECHO, "Echo", &"still serving".to_owned(), &options())
        .await
        .unwrap();
    assert_eq!(reply, "still serving");
    harness.shutdown().await;
}

#[tokio::test]
async fn server_gone_unavailable() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    harness.shutdown().await;
    let error = client
        .call(ECHO, "Echo", Vec::new(), &options())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
}

#[tokio::test]
async fn graceful_shutdown_finishes_calls() {
    let mut service = Service::new(ECHO);
    service.add_method("Slow", |_, request: String| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(request)
    });
    let harness = Harness::start(vec![service]);
    let client = harness.client().await;
    let call = tokio::spawn(async move {
        client
            .unary::<String, String>(ECHO, "Slow", &"done".to_owned(), &options())
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    harness.shutdown().await;
    assert_eq!(call.await.unwrap().unwrap(), "done");
}

#[test]
fn duplicate_service_rejected() {
    let mut server = Server::new();
    server.register(echo_service()).unwrap();
    let error = server.register(echo_service()).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("service {ECHO} is already registered")
    );
}

/// Sends raw frames and returns the decoded status of the response frame.
async fn raw_exchange(stream: &mut UnixStream, bytes: &[u8]) -> (u32, Status) {
    stream.write_all(bytes).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(10), read_frame(stream))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.message_type, MessageType::Response);
    let response = wire::Response::decode(frame.data.as_slice()).unwrap();
    (
        frame.stream_id,
        Status::from_proto(response.status.unwrap()),
    )
}

fn echo_request(text: &str) -> Vec<u8> {
    wire::Request {
        service: ECHO.into(),
        method: "Echo".into(),
        payload: text.to_owned().encode_to_vec(),
        ..Default::default()
    }
    .encode_to_vec()
}

#[tokio::test]
async fn protocol_errors_answered() {
    let harness = Harness::start(vec![echo_service()]);
    let mut stream = UnixStream::connect(&harness.path).await.unwrap();

    // Even stream ids belong to the server.
    let frame = Frame::new(2, MessageType::Request, 0, echo_request("a"));
    let (id, status) = raw_exchange(&mut stream, &frame.encode().unwrap()).await;
    assert_eq!(id, 2);
    assert_eq!(status.code(), Code::InvalidArgument);

    // An oversized frame is skipped and gets a ResourceExhausted response.
    let length = MAX_DATA_LEN + 1;
    let mut bytes = FrameHeader {
        length,
        stream_id: 3,
        message_type: MessageType::Request,
        flags: 0,
    }
    .encode()
    .to_vec();
    bytes.resize(bytes.len() + length as usize, 0);
    let (id, status) = raw_exchange(&mut stream, &bytes).await;
    assert_eq!(id, 3);
    assert_eq!(status.code(), Code::ResourceExhausted);

    // A request envelope that does not decode.
    let frame = Frame::new(5, MessageType::Request, 0, vec![0x0a, 0x30]);
    let (id, status) = raw_exchange(&mut stream, &frame.encode().unwrap()).await;
    assert_eq!(id, 5);
    assert_eq!(status.code(), Code::InvalidArgument);

    // Data on a stream that is not open.
    let frame = Frame::new(7, MessageType::Data, 0, vec![1]);
    let (_, status) = raw_exchange(&mut stream, &frame.encode().unwrap()).await;
    assert_eq!(status.code(), Code::InvalidArgument);

    // A valid request still works on the same connection.
    let frame = Frame::new(9, MessageType::Request, 0, echo_request("ok"));
    let (id, status) = raw_exchange(&mut stream, &frame.encode().unwrap()).await;
    assert_eq!(id, 9);
    assert_eq!(status.code(), Code::Ok);

    // Stream ids must increase.
    let frame = Frame::new(9, MessageType::Request, 0, echo_request("again"));
    let (_, status) = raw_exchange(&mut stream, &frame.encode().unwrap()).await;
    assert_eq!(status.code(), Code::InvalidArgument);

    drop(stream);
    harness.shutdown().await;
}

#[tokio::test]
async fn listener_from_inherited_fd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inherited.sock");
    let std_listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let fd = OwnedFd::from(std_listener);
    let listener = listener_from_fd(fd).unwrap();
    let mut server = Server::new();
    server.register(echo_service()).unwrap();
    let serving = tokio::spawn(server.serve(listener));

    let client = Client::connect(&format!("unix://{}", path.display()))
        .await
        .unwrap();
    let reply: String = client
        .unary(ECHO, "Echo", &"fd".to_owned(), &options())
        .await
        .unwrap();
    assert_eq!(reply, "fd");
    serving.abort();
}

#[tokio::test]
async fn task_service_over_ttrpc() {
    let fake = common::FakeTask::new();
    let harness = Harness::start(vec![task_ttrpc::service(Arc::clone(&fake))]);
    let client = task_ttrpc::TaskClient::new(harness.client().await);

    let mut call_options = options();
    call_options
        .metadata
        .insert(hull_proto::events::NAMESPACE_TTRPC_KEY, "default");
    let state = client
        .state(
            &task::StateRequest {
                id: "c1".into(),
                exec_id: "e1".into(),
            },
            &call_options,
        )
        .await
        .unwrap();
    assert_eq!(state.id, "c1");
    assert_eq!(state.exec_id, "e1");
    assert_eq!(state.pid, common::PID);
    assert_eq!(
        fake.namespaces.lock().unwrap().as_slice(),
        [Some("default".to_owned())]
    );

    let error = client
        .state(
            &task::StateRequest {
                id: "missing".into(),
                ..Default::default()
            },
            &options(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    client
        .kill(
            &task::KillRequest {
                id: "c1".into(),
                signal: 9,
                ..Default::default()
            },
            &options(),
        )
        .await
        .unwrap();
    let waited = client
        .wait(
            &task::WaitRequest {
                id: "c1".into(),
                ..Default::default()
            },
            &options(),
        )
        .await
        .unwrap();
    assert_eq!(waited.exit_status, 7);

    let error = client
        .pause(&task::PauseRequest { id: "c1".into() }, &options())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
    harness.shutdown().await;
}

#[test]
fn task_service_has_every_method() {
    let service = task_ttrpc::service(common::FakeTask::new());
    assert_eq!(service.name(), "containerd.task.v2.Task");
    assert_eq!(
        service.method_names(),
        [
            "Checkpoint",
            "CloseIO",
            "Connect",
            "Create",
            "Delete",
            "Exec",
            "Kill",
            "Pause",
            "Pids",
            "ResizePty",
            "Resume",
            "Shutdown",
            "Start",
            "State",
            "Stats",
            "Update",
            "Wait"
        ]
    );
}

#[test]
fn status_converts_to_tonic_and_back() {
    let details = vec![prost_types::Any {
        type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
        value: vec![1, 2, 3],
    }];
    let status = Status::with_details(Code::AlreadyExists, "exists", details.clone());
    let tonic_status = tonic::Status::from(status.clone());
    assert_eq!(tonic_status.code(), tonic::Code::AlreadyExists);
    assert_eq!(tonic_status.message(), "exists");
    let back = Status::from(tonic_status);
    assert_eq!(back, status);
    assert_eq!(back.details(), details.as_slice());
    assert_eq!(Code::from(99), Code::Unknown);
}

#[tokio::test]
async fn draining_rejects_new_calls() {
    let mut service = Service::new(ECHO);
    service.add_method("Slow", |_, request: String| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(request)
    });
    let mut harness = Harness::start(vec![service]);
    let client = harness.client().await;
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .unary::<String, String>(ECHO, "Slow", &"first".to_owned(), &options())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = harness.stop.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(100)).await;

    let error = client
        .call(ECHO, "Slow", Vec::new(), &options())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(slow.await.unwrap().unwrap(), "first");
    tokio::time::timeout(Duration::from_secs(10), &mut harness.server)
        .await
        .expect("server did not shut down")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn handler_panic_internal() {
    let harness = Harness::start(vec![echo_service()]);
    let client = harness.client().await;
    let error = client
        .call(ECHO, "Panic", Vec::new(), &options())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Internal);
    let reply: String = client
        .unary(ECHO, "Echo", &"after panic".to_owned(), &options())
        .await
        .unwrap();
    assert_eq!(reply, "after panic");
    harness.shutdown().await;
}

#[tokio::test]
async fn renamed_service_serves_v3() {
    use hull_proto::containerd::task::v3;

    let service =
        task_ttrpc::service(common::FakeTask::new()).with_name(v3::task_ttrpc::SERVICE_NAME);
    assert_eq!(service.name(), "containerd.task.v3.Task");
    let harness = Harness::start(vec![service]);
    let client = v3::task_ttrpc::TaskClient::new(harness.client().await);
    let state = client
        .state(
            &v3::StateRequest {
                id: "v3".into(),
                exec_id: String::new(),
            },
            &options(),
        )
        .await
        .unwrap();
    assert_eq!(state.id, "v3");
    assert_eq!(state.pid, common::PID);
    harness.shutdown().await;
}

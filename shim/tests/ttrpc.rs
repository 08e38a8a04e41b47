//! Bad input on the shim's ttrpc socket: malformed frames and clients that
//! go away mid-call must leave the shim serving other clients.

mod common;

use std::time::Duration;

use common::ShimServer;
use hull_integration::{require_root, Bundle};
use hull_proto::containerd::task::v3::task_ttrpc::TaskClient;
use hull_proto::containerd::task::v3::{ConnectRequest, StateRequest};
use hull_proto::ttrpc::{CallOptions, Client, Code};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Encodes a ttrpc frame header: data length, stream id, type and flags.
fn header(length: u32, stream_id: u32, message_type: u8, flags: u8) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(10);
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.extend_from_slice(&stream_id.to_be_bytes());
    bytes.push(message_type);
    bytes.push(flags);
    bytes
}

/// Connects to the ttrpc socket, waiting until the shim listens.
async fn connect(server: &ShimServer) -> UnixStream {
    for _ in 0..100 {
        if let Ok(stream) = UnixStream::connect(server.ttrpc_socket()).await {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the shim did not listen on {}",
        server.ttrpc_socket().display()
    );
}

/// Sends `bytes` on a new connection, then reads until the shim closes it
/// or a second passes, and closes it.
async fn send_raw(server: &ShimServer, bytes: &[u8]) {
    let mut stream = connect(server).await;
    let _ = stream.write_all(bytes).await;
    let mut buffer = vec![0u8; 4096];
    let read = async {
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), read).await;
}

/// Calls Connect over a fresh ttrpc connection and checks the shim pid.
async fn assert_serving(server: &ShimServer, after: &str) {
    let path = server.ttrpc_socket().to_str().unwrap().to_owned();
    let client = TaskClient::new(Client::connect(&path).await.unwrap());
    let options = CallOptions::with_timeout(CALL_TIMEOUT);
    let connected = client
        .connect(&ConnectRequest { id: "none".into() }, &options)
        .await
        .unwrap_or_else(|status| panic!("Connect failed after {after}: {status:?}"));
    assert_eq!(connected.shim_pid, server.pid(), "after {after}");
}

#[tokio::test(flavor = "current_thread")]
async fn ttrpc_survives_malformed_frames() {
    require_root!();
    let bundle = Bundle::busybox(&["true"]);
    bundle.write();
    let mut server = ShimServer::start(bundle.path(), "none");
    connect(&server).await;

    let mut oversized = header(u32::MAX, 1, 1, 0);
    oversized.extend_from_slice(&[0xff; 64]);
    let mut garbage_request = header(16, 1, 1, 0);
    garbage_request.extend_from_slice(&[0xff; 16]);
    let mut even_stream = header(0, 2, 1, 0);
    even_stream.extend_from_slice(&header(0, 3, 7, 0));
    let mut unknown_type = header(4, 1, 0x7f, 0);
    unknown_type.extend_from_slice(b"junk");
    let cases: [(&str, Vec<u8>); 6] = [
        ("a truncated header", vec![0, 0, 0]),
        ("an oversized frame", oversized),
        ("a request that is not protobuf", garbage_request),
        ("an even stream id and an unknown type", even_stream),
        ("an unknown message type", unknown_type),
        ("text", b"GET / HTTP/1.1\r\nHost: shim\r\n\r\n".to_vec()),
    ];
    for (name, bytes) in cases {
        send_raw(&server, &bytes).await;
        assert!(server.is_running(), "the shim exited after {name}");
        assert_serving(&server, name).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn ttrpc_survives_client_gone_mid_call() {
    require_root!();
    let bundle = Bundle::busybox(&["true"]);
    bundle.write();
    let mut server = ShimServer::start(bundle.path(), "none");
    connect(&server).await;

    // A frame cut off after its header: the shim waits for data that
    // never comes, then reads end-of-file.
    let mut stream = connect(&server).await;
    stream.write_all(&header(100, 1, 1, 0)).await.unwrap();
    stream.write_all(&[0x0a; 20]).await.unwrap();
    drop(stream);
    assert!(server.is_running(), "the shim exited after a cut-off frame");
    assert_serving(&server, "a cut-off frame").await;

    // A whole request whose client closes before the response.
    let path = server.ttrpc_socket().to_str().unwrap().to_owned();
    let request = StateRequest {
        id: "missing".into(),
        exec_id: String::new(),
    };
    let options = CallOptions::with_timeout(CALL_TIMEOUT);
    for _ in 0..20 {
        let client = TaskClient::new(Client::connect(&path).await.unwrap());
        let call = client.state(&request, &options);
        // Polling the call once sends the request, then the client goes.
        let _ = tokio::time::timeout(Duration::from_millis(1), call).await;
        drop(client);
    }
    assert!(server.is_running(), "the shim exited after dropped calls");
    assert_serving(&server, "dropped calls").await;

    let client = TaskClient::new(Client::connect(&path).await.unwrap());
    let missing = client
        .state(
            &StateRequest {
                id: "missing".into(),
                exec_id: String::new(),
            },
            &CallOptions::with_timeout(CALL_TIMEOUT),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
}

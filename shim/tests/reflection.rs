//! A gRPC client of the shim built only from server reflection: it fetches
//! the descriptors through `grpc.reflection.v1.ServerReflection`, finds
//! `containerd.task.v3.Task` and calls it with dynamic messages, without
//! the generated types.

mod common;

use std::collections::{HashMap, VecDeque};

use common::ShimServer;
use hull_integration::{require_root, Bundle};
use prost::bytes::{Buf, BufMut};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, Value};
use prost_types::FileDescriptorProto;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::Code;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;

const TASK_SERVICE: &str = "containerd.task.v3.Task";

/// A codec that passes encoded messages through as bytes.
#[derive(Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Sends one reflection request and returns the file descriptors of the
/// response.
async fn fetch_files(channel: Channel, request: MessageRequest) -> Vec<FileDescriptorProto> {
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection call failed")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("reflection stream failed")
        .expect("reflection returned no response");
    match response.message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()).unwrap())
            .collect(),
        other => panic!("unexpected reflection response: {other:?}"),
    }
}

/// Builds a descriptor pool from the file that defines `symbol` and every
/// file it imports, asking for each missing import by name.
async fn pool_for_symbol(channel: &Channel, symbol: &str) -> DescriptorPool {
    let mut files: HashMap<String, FileDescriptorProto> = HashMap::new();
    let mut queue: VecDeque<FileDescriptorProto> = fetch_files(
        channel.clone(),
        MessageRequest::FileContainingSymbol(symbol.to_owned()),
    )
    .await
    .into();
    while let Some(file) = queue.pop_front() {
        for import in &file.dependency {
            let known = files.contains_key(import) || queue.iter().any(|f| f.name() == import);
            if !known {
                let fetched = fetch_files(
                    channel.clone(),
                    MessageRequest::FileByFilename(import.clone()),
                )
                .await;
                queue.extend(fetched);
            }
        }
        files.insert(file.name().to_owned(), file);
    }
    let mut pool = DescriptorPool::new();
    pool.add_file_descriptor_protos(files.into_values())
        .expect("the reflected descriptors do not form a valid pool");
    pool
}

/// Calls `method` with `request` and returns the response, both dynamic.
async fn call(
    channel: &Channel,
    method: &MethodDescriptor,
    request: &DynamicMessage,
) -> Result<DynamicMessage, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("the gRPC channel is not ready");
    let path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let path = PathAndQuery::try_from(path).unwrap();
    let response = grpc
        .unary(tonic::Request::new(request.encode_to_vec()), path, RawCodec)
        .await?
        .into_inner();
    Ok(DynamicMessage::decode(method.output(), response.as_slice()).unwrap())
}

#[tokio::test(flavor = "current_thread")]
async fn reflection_client_calls_task() {
    require_root!();
    let bundle = Bundle::busybox(&["true"]);
    bundle.write();
    let server = ShimServer::start(bundle.path(), "none");
    let channel = server.channel().await;

    let pool = pool_for_symbol(&channel, TASK_SERVICE).await;
    let service = pool
        .get_service_by_name(TASK_SERVICE)
        .expect("reflection has no task service");
    let method = |name: &str| {
        service
            .methods()
            .find(|method| method.name() == name)
            .unwrap_or_else(|| panic!("the task service has no method {name}"))
    };

    let connect = method("Connect");
    let mut request = DynamicMessage::new(connect.input());
    request.set_field_by_name("id", Value::String("none".into()));
    let response = call(&channel, &connect, &request).await.unwrap();
    let shim_pid = response
        .get_field_by_name("shim_pid")
        .and_then(|value| value.as_u32());
    assert_eq!(shim_pid, Some(server.pid()), "{response:?}");
    let version = response.get_field_by_name("version").unwrap();
    assert_eq!(version.as_str(), Some(env!("CARGO_PKG_VERSION")));

    let state = method("State");
    assert_eq!(state.input().full_name(), "containerd.task.v3.StateRequest");
    let mut request = DynamicMessage::new(state.input());
    request.set_field_by_name("id", Value::String("missing".into()));
    let error = call(&channel, &state, &request).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "{error}");
    assert!(error.message().contains("missing"), "{error}");
}

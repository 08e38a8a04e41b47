//! Frame encoding, decoding and golden byte vectors from the ttrpc protocol
//! description (10-byte header: length u32 BE, stream id u32 BE, type u8,
//! flags u8).

use hull_proto::containerd::services::events::ttrpc::v1::ForwardRequest;
use hull_proto::containerd::types::Envelope;
use hull_proto::ttrpc::frame::{
    read_frame, Frame, FrameError, FrameHeader, MessageType, FLAG_NO_DATA, FLAG_REMOTE_CLOSED,
    FLAG_REMOTE_OPEN, HEADER_LEN, MAX_DATA_LEN,
};
use hull_proto::ttrpc::wire;
use prost::Message;

#[test]
fn header_round_trip() {
    let header = FrameHeader {
        length: 0x0102_0304,
        stream_id: 0x0a0b_0c0d,
        message_type: MessageType::Data,
        flags: FLAG_REMOTE_CLOSED | FLAG_NO_DATA,
    };
    let bytes = header.encode();
    assert_eq!(
        bytes,
        [0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x03, 0x05]
    );
    assert_eq!(FrameHeader::decode(&bytes).unwrap(), header);
}

#[test]
fn flag_and_type_values() {
    assert_eq!(FLAG_REMOTE_CLOSED, 0x1);
    assert_eq!(FLAG_REMOTE_OPEN, 0x2);
    assert_eq!(FLAG_NO_DATA, 0x4);
    assert_eq!(u8::from(MessageType::Request), 1);
    assert_eq!(u8::from(MessageType::Response), 2);
    assert_eq!(u8::from(MessageType::Data), 3);
    assert_eq!(MAX_DATA_LEN, 4 * 1024 * 1024);
}

#[test]
fn frame_round_trip() {
    let frame = Frame::new(7, MessageType::Request, 0, b"payload".to_vec());
    let bytes = frame.encode().unwrap();
    assert_eq!(bytes.len(), HEADER_LEN + 7);
    let (decoded, used) = Frame::decode(&bytes).unwrap();
    assert_eq!(decoded, frame);
    assert_eq!(used, bytes.len());
}

#[test]
fn empty_frame_round_trip() {
    let frame = Frame::new(1, MessageType::Response, 0, Vec::new());
    let bytes = frame.encode().unwrap();
    assert_eq!(bytes, [0, 0, 0, 0, 0, 0, 0, 1, 2, 0]);
    assert_eq!(Frame::decode(&bytes).unwrap().0, frame);
}

#[test]
fn decode_leaves_following_bytes() {
    let mut bytes = Frame::new(3, MessageType::Data, 0, vec![9; 3])
        .encode()
        .unwrap();
    bytes.extend_from_slice(&[0xff; 4]);
    let (frame, used) = Frame::decode(&bytes).unwrap();
    assert_eq!(frame.data, vec![9; 3]);
    assert_eq!(used, HEADER_LEN + 3);
}

#[test]
fn truncated_header_rejected() {
    for length in 0..HEADER_LEN {
        let error = FrameHeader::decode(&[0u8; HEADER_LEN][..length]).unwrap_err();
        assert!(
            matches!(error, FrameError::TruncatedHeader { available } if available == length),
            "length {length}: {error}"
        );
    }
}

#[test]
fn truncated_data_rejected() {
    let bytes = Frame::new(1, MessageType::Request, 0, vec![1; 8])
        .encode()
        .unwrap();
    let error = Frame::decode(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(matches!(
        error,
        FrameError::TruncatedData {
            stream_id: 1,
            length: 8,
            available: 7
        }
    ));
}

#[test]
fn oversized_encode_rejected() {
    let frame = Frame::new(
        1,
        MessageType::Request,
        0,
        vec![0; MAX_DATA_LEN as usize + 1],
    );
    let error = frame.encode().unwrap_err();
    assert!(matches!(error, FrameError::Oversized { stream_id: 1, .. }));
    let at_limit = Frame::new(1, MessageType::Request, 0, vec![0; MAX_DATA_LEN as usize]);
    assert!(at_limit.encode().is_ok());
}

#[test]
fn oversized_decode_rejected() {
    let mut header = FrameHeader {
        length: MAX_DATA_LEN + 1,
        stream_id: 5,
        message_type: MessageType::Request,
        flags: 0,
    }
    .encode()
    .to_vec();
    header.extend_from_slice(&[0; 16]);
    let error = Frame::decode(&header).unwrap_err();
    assert!(
        matches!(error, FrameError::Oversized { stream_id: 5, length } if length == u64::from(MAX_DATA_LEN) + 1)
    );
}

#[test]
fn unknown_type_preserved() {
    let bytes = [0, 0, 0, 1, 0, 0, 0, 9, 0x7f, 0x80, 0xaa];
    let (frame, _) = Frame::decode(&bytes).unwrap();
    assert_eq!(frame.message_type, MessageType::Unknown(0x7f));
    assert_eq!(frame.flags, 0x80);
    assert_eq!(frame.data, [0xaa]);
    assert_eq!(frame.encode().unwrap(), bytes);
}

#[tokio::test]
async fn read_frame_sequence() {
    let mut bytes = Frame::new(1, MessageType::Request, 0, b"one".to_vec())
        .encode()
        .unwrap();
    bytes.extend(
        Frame::new(3, MessageType::Data, FLAG_REMOTE_CLOSED, Vec::new())
            .encode()
            .unwrap(),
    );
    let mut reader = bytes.as_slice();
    let first = read_frame(&mut reader).await.unwrap().unwrap();
    assert_eq!(first.data, b"one");
    let second = read_frame(&mut reader).await.unwrap().unwrap();
    assert_eq!(second.stream_id, 3);
    assert_eq!(second.flags, FLAG_REMOTE_CLOSED);
    assert!(read_frame(&mut reader).await.unwrap().is_none());
}

#[tokio::test]
async fn read_frame_truncated_header() {
    let mut reader: &[u8] = &[0, 0, 0];
    let error = read_frame(&mut reader).await.unwrap_err();
    assert!(matches!(
        error,
        FrameError::TruncatedHeader { available: 3 }
    ));
}

#[tokio::test]
async fn read_frame_truncated_data() {
    let mut reader: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 1, 1, 0, 0xaa];
    let error = read_frame(&mut reader).await.unwrap_err();
    assert!(matches!(
        error,
        FrameError::TruncatedData {
            stream_id: 1,
            length: 4,
            available: 1
        }
    ));
}

#[tokio::test]
async fn read_frame_skips_oversized() {
    let length = MAX_DATA_LEN + 3;
    let mut bytes = FrameHeader {
        length,
        stream_id: 9,
        message_type: MessageType::Request,
        flags: 0,
    }
    .encode()
    .to_vec();
    bytes.extend(std::iter::repeat_n(0x55, length as usize));
    bytes.extend(
        Frame::new(11, MessageType::Request, 0, b"next".to_vec())
            .encode()
            .unwrap(),
    );
    let mut reader = bytes.as_slice();
    let error = read_frame(&mut reader).await.unwrap_err();
    assert!(matches!(error, FrameError::Oversized { stream_id: 9, .. }));
    let next = read_frame(&mut reader).await.unwrap().unwrap();
    assert_eq!(next.stream_id, 11);
    assert_eq!(next.data, b"next");
}

/// A request frame for Events/Forward assembled byte by byte from the
/// protocol description and protobuf's wire format.
#[test]
fn golden_forward_request_frame() {
    let envelope = Envelope {
        timestamp: None,
        namespace: "ns".into(),
        topic: "/t".into(),
        event: None,
    };
    let request = wire::Request {
        service: "containerd.services.events.ttrpc.v1.Events".into(),
        method: "Forward".into(),
        payload: ForwardRequest {
            envelope: Some(envelope),
        }
        .encode_to_vec(),
        timeout_nano: 5_000_000_000,
        metadata: vec![wire::KeyValue {
            key: "containerd-namespace-ttrpc".into(),
            value: "ns".into(),
        }],
    };
    let bytes = Frame::new(1, MessageType::Request, 0, request.encode_to_vec())
        .encode()
        .unwrap();

    let mut expected = Vec::new();
    // ttrpc.Request field 1 (service), length-delimited: tag 0x0a.
    let service = b"containerd.services.events.ttrpc.v1.Events";
    expected.extend([0x0a, service.len() as u8]);
    expected.extend(service);
    // Field 2 (method): tag 0x12.
    expected.extend([0x12, 7]);
    expected.extend(b"Forward");
    // Field 3 (payload): ForwardRequest { envelope (1): Envelope {
    // namespace (2): "ns", topic (3): "/t" } }.
    expected.extend([0x1a, 10, 0x0a, 8, 0x12, 2, b'n', b's', 0x1a, 2, b'/', b't']);
    // Field 4 (timeout_nano), varint 5e9: tag 0x20.
    expected.extend([0x20, 0x80, 0xe4, 0x97, 0xd0, 0x12]);
    // Field 5 (metadata): KeyValue { key (1), value (2) }.
    let key = b"containerd-namespace-ttrpc";
    expected.extend([0x2a, (key.len() + 2 + 4) as u8, 0x0a, key.len() as u8]);
    expected.extend(key);
    expected.extend([0x12, 2, b'n', b's']);

    let mut header = Vec::new();
    header.extend((expected.len() as u32).to_be_bytes());
    header.extend([0, 0, 0, 1, 0x01, 0x00]);
    header.extend(expected);
    assert_eq!(bytes, header);
}

/// A response frame carrying status NotFound, as a server sends it.
#[test]
fn golden_error_response_frame() {
    let bytes: &[u8] = &[
        0, 0, 0, 9, // data length
        0, 0, 0, 3, // stream id
        0x02, 0x00, // response, no flags
        0x0a, 7, // Response.status
        0x08, 5, // Status.code = 5 (NotFound)
        0x12, 3, b'g', b'o', b'n', // Status.message
    ];
    let (frame, _) = Frame::decode(bytes).unwrap();
    assert_eq!(frame.message_type, MessageType::Response);
    let response = wire::Response::decode(frame.data.as_slice()).unwrap();
    let status = hull_proto::ttrpc::Status::from_proto(response.status.unwrap());
    assert_eq!(status.code(), hull_proto::ttrpc::Code::NotFound);
    assert_eq!(status.message(), "gon");
    assert!(response.payload.is_empty());
}

/// Bytes that `ctr shim --id golden state` (containerd 1.6.20, Go ttrpc
/// 1.1.1) sent to a listening socket, captured once with a raw listener.
const GO_STATE_REQUEST: &[u8] = &[
    0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x0a, 0x17, b'c', b'o', b'n', b't',
    b'a', b'i', b'n', b'e', b'r', b'd', b'.', b't', b'a', b's', b'k', b'.', b'v', b'2', b'.', b'T',
    b'a', b's', b'k', 0x12, 0x05, b'S', b't', b'a', b't', b'e', 0x1a, 0x08, 0x0a, 0x06, b'g', b'o',
    b'l', b'd', b'e', b'n',
];

#[test]
fn golden_go_client_request() {
    let (frame, used) = Frame::decode(GO_STATE_REQUEST).unwrap();
    assert_eq!(used, GO_STATE_REQUEST.len());
    assert_eq!(frame.stream_id, 1);
    assert_eq!(frame.message_type, MessageType::Request);
    assert_eq!(frame.flags, 0);

    let request = wire::Request::decode(frame.data.as_slice()).unwrap();
    assert_eq!(request.service, "containerd.task.v2.Task");
    assert_eq!(request.method, "State");
    assert_eq!(request.timeout_nano, 0);
    assert!(request.metadata.is_empty());
    let state =
        hull_proto::containerd::task::v2::StateRequest::decode(request.payload.as_slice()).unwrap();
    assert_eq!(state.id, "golden");
    assert_eq!(state.exec_id, "");

    // Encoding the same request again gives the same bytes.
    let again = Frame::new(1, MessageType::Request, 0, request.encode_to_vec());
    assert_eq!(again.encode().unwrap(), GO_STATE_REQUEST);
}

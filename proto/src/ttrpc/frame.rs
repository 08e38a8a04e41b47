//! ttrpc message frames: a 10-byte header followed by the message data.
//!
//! The header contains the data length (u32, big-endian), the stream id (u32,
//! big-endian), the message type (u8) and type-specific flags (u8).

use tokio::io::{AsyncRead, AsyncReadExt};

/// Size of a frame header in bytes.
pub const HEADER_LEN: usize = 10;

/// Maximum data length of one frame (4 MiB). Longer frames are rejected.
pub const MAX_DATA_LEN: u32 = 4 << 20;

/// Flag of a request or data frame: the sender sends no more data on the stream.
pub const FLAG_REMOTE_CLOSED: u8 = 0x1;
/// Flag of a request frame: the sender goes on sending data frames.
pub const FLAG_REMOTE_OPEN: u8 = 0x2;
/// Flag of a data frame: the frame carries no data.
pub const FLAG_NO_DATA: u8 = 0x4;

/// Message type of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// Opens a stream and carries a `ttrpc.Request`.
    Request,
    /// Ends a stream and carries a `ttrpc.Response`.
    Response,
    /// Carries stream data.
    Data,
    /// A type this implementation does not recognize. Its data is skipped.
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(value: u8) -> Self {
        match value {
            0x1 => Self::Request,
            0x2 => Self::Response,
            0x3 => Self::Data,
            other => Self::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(value: MessageType) -> Self {
        match value {
            MessageType::Request => 0x1,
            MessageType::Response => 0x2,
            MessageType::Data => 0x3,
            MessageType::Unknown(other) => other,
        }
    }
}

/// Errors of frame encoding and decoding.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Fewer than [`HEADER_LEN`] bytes were available for a header.
    #[error("truncated frame header: {available} of {HEADER_LEN} bytes")]
    TruncatedHeader { available: usize },
    /// The connection ended inside a frame's data.
    #[error("truncated frame data on stream {stream_id}: {available} of {length} bytes")]
    TruncatedData {
        stream_id: u32,
        length: u32,
        available: usize,
    },
    /// The data length exceeds [`MAX_DATA_LEN`]. When reading, the data has
    /// been skipped, so the next frame can still be read.
    #[error("message length {length} exceeds maximum message size of {MAX_DATA_LEN} on stream {stream_id}")]
    Oversized { stream_id: u32, length: u64 },
    #[error("frame i/o failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Fixed-size part of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Length of the data that follows the header.
    pub length: u32,
    pub stream_id: u32,
    pub message_type: MessageType,
    pub flags: u8,
}

impl FrameHeader {
    /// Encodes the header in wire order.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..4].copy_from_slice(&self.length.to_be_bytes());
        bytes[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        bytes[8] = self.message_type.into();
        bytes[9] = self.flags;
        bytes
    }

    /// Decodes a header from the first [`HEADER_LEN`] bytes of `bytes`.
    ///
    /// The length is not checked against [`MAX_DATA_LEN`], so a reader can
    /// still skip an oversized frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        if bytes.len() < HEADER_LEN {
            return Err(FrameError::TruncatedHeader {
                available: bytes.len(),
            });
        }
        Ok(Self {
            length: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            stream_id: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            message_type: MessageType::from(bytes[8]),
            flags: bytes[9],
        })
    }
}

/// A whole frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub stream_id: u32,
    pub message_type: MessageType,
    pub flags: u8,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn new(stream_id: u32, message_type: MessageType, flags: u8, data: Vec<u8>) -> Self {
        Self {
            stream_id,
            message_type,
            flags,
            data,
        }
    }

    /// Encodes the header and data into one buffer, so that a single write
    /// puts the whole frame on the connection.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let length = u32::try_from(self.data.len())
            .ok()
            .filter(|length| *length <= MAX_DATA_LEN)
            .ok_or(FrameError::Oversized {
                stream_id: self.stream_id,
                length: self.data.len() as u64,
            })?;
        let header = FrameHeader {
            length,
            stream_id: self.stream_id,
            message_type: self.message_type,
            flags: self.flags,
        };
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.data.len());
        bytes.extend_from_slice(&header.encode());
        bytes.extend_from_slice(&self.data);
        Ok(bytes)
    }

    /// Decodes one frame from the start of `bytes` and returns it with the
    /// number of bytes it used.
    pub fn decode(bytes: &[u8]) -> Result<(Self, usize), FrameError> {
        let header = FrameHeader::decode(bytes)?;
        if header.length > MAX_DATA_LEN {
            return Err(FrameError::Oversized {
                stream_id: header.stream_id,
                length: header.length.into(),
            });
        }
        let end = HEADER_LEN + header.length as usize;
        if bytes.len() < end {
            return Err(FrameError::TruncatedData {
                stream_id: header.stream_id,
                length: header.length,
                available: bytes.len() - HEADER_LEN,
            });
        }
        let frame = Self::new(
            header.stream_id,
            header.message_type,
            header.flags,
            bytes[HEADER_LEN..end].to_vec(),
        );
        Ok((frame, end))
    }
}

/// Reads the next frame from `reader`.
///
/// Returns `Ok(None)` when the connection ends cleanly between frames. An
/// oversized frame's data is read and dropped before
/// [`FrameError::Oversized`] is returned, so the caller can send an error
/// response on that stream and read on.
pub async fn read_frame<R>(reader: &mut R) -> Result<Option<Frame>, FrameError>
where
    R: AsyncRead + Unpin,
{
    let mut header_bytes = [0u8; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        let read = reader.read(&mut header_bytes[filled..]).await?;
        if read == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(FrameError::TruncatedHeader { available: filled });
        }
        filled += read;
    }
    let header = FrameHeader::decode(&header_bytes)?;

    if header.length > MAX_DATA_LEN {
        skip_exact(reader, header).await?;
        return Err(FrameError::Oversized {
            stream_id: header.stream_id,
            length: header.length.into(),
        });
    }

    let mut data = vec![0u8; header.length as usize];
    let mut filled = 0;
    while filled < data.len() {
        let read = reader.read(&mut data[filled..]).await?;
        if read == 0 {
            return Err(FrameError::TruncatedData {
                stream_id: header.stream_id,
                length: header.length,
                available: filled,
            });
        }
        filled += read;
    }
    Ok(Some(Frame::new(
        header.stream_id,
        header.message_type,
        header.flags,
        data,
    )))
}

async fn skip_exact<R>(reader: &mut R, header: FrameHeader) -> Result<(), FrameError>
where
    R: AsyncRead + Unpin,
{
    let mut skipped = 0u64;
    let total = u64::from(header.length);
    let mut scratch = vec![0u8; 64 * 1024];
    while skipped < total {
        let want = (total - skipped).min(scratch.len() as u64) as usize;
        let read = reader.read(&mut scratch[..want]).await?;
        if read == 0 {
            return Err(FrameError::TruncatedData {
                stream_id: header.stream_id,
                length: header.length,
                available: skipped as usize,
            });
        }
        skipped += read as u64;
    }
    Ok(())
}

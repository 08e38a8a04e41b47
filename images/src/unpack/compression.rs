//! Layer compression formats and their media types.

use std::io::{self, BufRead, Read};

use super::UnpackError;

/// Compression format of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// Maps an OCI or Docker layer media type to its compression, including
    /// the non-distributable (foreign) layer types.
    pub fn from_media_type(media_type: &str) -> Result<Self, UnpackError> {
        let compression = match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Self::None,
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Self::Gzip,
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Self::Zstd,
            other => return Err(UnpackError::UnknownMediaType(other.to_owned())),
        };
        Ok(compression)
    }

    /// Wraps `reader` in the matching decoder. The caller buffers `reader`.
    pub(crate) fn decoder<'a, R: BufRead + 'a>(self, reader: R) -> io::Result<Box<dyn Read + 'a>> {
        let decoder: Box<dyn Read + 'a> = match self {
            Self::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
            Self::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
            Self::None => Box::new(reader),
        };
        Ok(decoder)
    }
}

//! AUFS-style whiteout entries of OCI layers, turned into what overlayfs
//! reads: a 0/0 character device for a deleted name and the
//! `trusted.overlay.opaque` attribute for an opaque directory.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{FileType, Mode, XattrFlags};
use std::os::fd::BorrowedFd;

use super::beneath::remove_all;
use super::UnpackError;

const PREFIX: &[u8] = b".wh.";
const META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Meaning of a final name component as a whiteout.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Whiteout<'a> {
    /// Not a whiteout: an ordinary entry.
    Regular,
    /// `.wh..wh..opq`: the parent directory hides all lower layers' children.
    Opaque,
    /// Another `.wh..wh.*` name, which carries no meaning for overlayfs.
    Ignored,
    /// `.wh.NAME`: NAME is deleted.
    Delete(&'a OsStr),
}

/// Classifies `file`, a component without a slash, and rejects whiteouts
/// whose NAME is empty, `.` or `..`.
pub(crate) fn classify<'a>(file: &'a OsStr, display: &str) -> Result<Whiteout<'a>, UnpackError> {
    let bytes = file.as_bytes();
    if bytes == OPAQUE {
        return Ok(Whiteout::Opaque);
    }
    if bytes.starts_with(META_PREFIX) {
        return Ok(Whiteout::Ignored);
    }
    let Some(deleted) = bytes.strip_prefix(PREFIX) else {
        return Ok(Whiteout::Regular);
    };
    if deleted.is_empty() || deleted == b"." || deleted == b".." {
        return Err(UnpackError::rejected(
            display,
            format!(
                "is a whiteout of {:?}, which is not a file name",
                String::from_utf8_lossy(deleted)
            ),
        ));
    }
    Ok(Whiteout::Delete(OsStr::from_bytes(deleted)))
}

/// Replaces `name` in `dir`, whatever it is, with a 0/0 character device.
pub(crate) fn delete(dir: BorrowedFd<'_>, name: &OsStr, display: &str) -> Result<(), UnpackError> {
    remove_all(dir, name)
        .map_err(|e| UnpackError::entry(display, "remove the whited-out name of", e))?;
    rustix::fs::mknodat(
        dir,
        name,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .map_err(|e| UnpackError::entry(display, "create the whiteout device of", e))
}

/// Marks the directory `dir` opaque.
pub(crate) fn mark_opaque(dir: BorrowedFd<'_>, display: &str) -> Result<(), UnpackError> {
    rustix::fs::fsetxattr(dir, "trusted.overlay.opaque", b"y", XattrFlags::empty())
        .map_err(|e| UnpackError::entry(display, "mark the directory opaque for", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_whiteout_names() {
        let c = |s: &'static str| classify(OsStr::new(s), s);
        assert_eq!(c("a").unwrap(), Whiteout::Regular);
        assert_eq!(c(".whx").unwrap(), Whiteout::Regular);
        assert_eq!(c(".wh..wh..opq").unwrap(), Whiteout::Opaque);
        assert_eq!(c(".wh..wh.plnk").unwrap(), Whiteout::Ignored);
        assert_eq!(c(".wh.a").unwrap(), Whiteout::Delete(OsStr::new("a")));
        assert_eq!(c(".wh..a").unwrap(), Whiteout::Delete(OsStr::new(".a")));
        // These delete "", "." and "..".
        for bad in [".wh.", ".wh..", ".wh..."] {
            let result = c(bad);
            assert!(
                matches!(result, Err(UnpackError::Rejected { .. })),
                "{bad}: {result:?}"
            );
        }
    }
}

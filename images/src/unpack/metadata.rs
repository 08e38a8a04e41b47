//! Owner, mode, extended attributes and times of an entry, read from its
//! tar header and PAX records, and applied to the created file.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{AtFlags, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};

use super::UnpackError;

/// Prefix of PAX records that carry extended attributes (GNU tar, Go's
/// archive/tar and umoci write them).
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// Overlayfs interprets `trusted.overlay.*` attributes of its layers
/// (opaque, redirect, metacopy), so a layer may only get them through
/// whiteout entries.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// The metadata of one tar entry.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    /// Extended attributes as (name, value).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Metadata {
    /// Reads the header fields, with PAX `uid`, `gid`, `mtime` and
    /// `SCHILY.xattr.*` records taking precedence.
    pub fn read<R: Read>(
        entry: &mut tar::Entry<'_, R>,
        display: &str,
    ) -> Result<Self, UnpackError> {
        let header = entry.header();
        let invalid = |field: &'static str, e: io::Error| UnpackError::Entry {
            entry: display.to_owned(),
            action: field,
            source: e,
        };
        let mut metadata = Self {
            mode: header.mode().map_err(|e| invalid("read the mode of", e))? & 0o7777,
            uid: to_u32(
                header.uid().map_err(|e| invalid("read the uid of", e))?,
                display,
            )?,
            gid: to_u32(
                header.gid().map_err(|e| invalid("read the gid of", e))?,
                display,
            )?,
            mtime: Timespec {
                tv_sec: header
                    .mtime()
                    .map_err(|e| invalid("read the mtime of", e))? as i64,
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
        };
        let Some(extensions) = entry
            .pax_extensions()
            .map_err(|e| invalid("read the PAX records of", e))?
        else {
            return Ok(metadata);
        };
        for extension in extensions {
            let extension = extension.map_err(|e| invalid("read the PAX records of", e))?;
            let key = extension.key_bytes();
            let value = extension.value_bytes();
            match key {
                b"uid" => metadata.uid = parse_id(value, "uid", display)?,
                b"gid" => metadata.gid = parse_id(value, "gid", display)?,
                b"mtime" => metadata.mtime = parse_pax_time(value, display)?,
                _ => {
                    if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                        if !name.starts_with(OVERLAY_XATTR_PREFIX) {
                            metadata.xattrs.push((name.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(metadata)
    }

    pub fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
}

fn to_u32(id: u64, display: &str) -> Result<u32, UnpackError> {
    u32::try_from(id)
        .map_err(|_| UnpackError::rejected(display, format!("has owner id {id}, above 2^32-1")))
}

fn parse_id(value: &[u8], field: &str, display: &str) -> Result<u32, UnpackError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| {
            UnpackError::rejected(
                display,
                format!(
                    "has an invalid PAX {field} {:?}",
                    String::from_utf8_lossy(value)
                ),
            )
        })
}

/// Parses a PAX time, `SECONDS[.FRACTION]`, where seconds may be negative.
fn parse_pax_time(value: &[u8], display: &str) -> Result<Timespec, UnpackError> {
    let invalid = || {
        UnpackError::rejected(
            display,
            format!(
                "has an invalid PAX mtime {:?}",
                String::from_utf8_lossy(value)
            ),
        )
    };
    let text = std::str::from_utf8(value).map_err(|_| invalid())?;
    let (seconds, fraction) = text.split_once('.').unwrap_or((text, ""));
    let tv_sec: i64 = seconds.parse().map_err(|_| invalid())?;
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let digits: String = fraction
        .chars()
        .chain("000000000".chars())
        .take(9)
        .collect();
    let mut tv_nsec: i64 = digits.parse().map_err(|_| invalid())?;
    let mut tv_sec = tv_sec;
    // "-1.5" is 1.5 s before the epoch: -2 s plus 0.5 s.
    if seconds.starts_with('-') && tv_nsec > 0 {
        tv_sec -= 1;
        tv_nsec = 1_000_000_000 - tv_nsec;
    }
    Ok(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

/// Sets owner, mode and extended attributes of `name` in `dir`, in that
/// order: chown clears setuid, setgid and `security.capability`, so they
/// come after it. Symbolic links get no mode. Times are set separately.
pub(crate) fn apply_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    metadata: &Metadata,
    is_symlink: bool,
    display: &str,
) -> Result<(), UnpackError> {
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(metadata.uid)),
        Some(Gid::from_raw(metadata.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| UnpackError::entry(display, "change the owner of", e))?;
    if !is_symlink {
        rustix::fs::chmodat(
            dir,
            name,
            Mode::from_raw_mode(metadata.mode),
            AtFlags::empty(),
        )
        .map_err(|e| UnpackError::entry(display, "change the mode of", e))?;
    }
    if !metadata.xattrs.is_empty() {
        // lsetxattr does not follow `name` itself. The /proc prefix is the
        // already open parent directory, so no lookup leaves the layer.
        let mut path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        path.push(name);
        for (key, value) in &metadata.xattrs {
            rustix::fs::lsetxattr(&path, OsStr::from_bytes(key), value, XattrFlags::empty())
                .map_err(|e| xattr_error(display, key, e.into()))?;
        }
    }
    Ok(())
}

/// Like [`apply_at`] for an open regular file.
pub(crate) fn apply_fd(
    file: BorrowedFd<'_>,
    metadata: &Metadata,
    display: &str,
) -> Result<(), UnpackError> {
    rustix::fs::fchown(
        file,
        Some(Uid::from_raw(metadata.uid)),
        Some(Gid::from_raw(metadata.gid)),
    )
    .map_err(|e| UnpackError::entry(display, "change the owner of", e))?;
    rustix::fs::fchmod(file, Mode::from_raw_mode(metadata.mode))
        .map_err(|e| UnpackError::entry(display, "change the mode of", e))?;
    for (key, value) in &metadata.xattrs {
        rustix::fs::fsetxattr(file, OsStr::from_bytes(key), value, XattrFlags::empty())
            .map_err(|e| xattr_error(display, key, e.into()))?;
    }
    Ok(())
}

/// Sets the access and modification times of `name` in `dir` without
/// following it.
pub(crate) fn set_times_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    times: &Timestamps,
    display: &str,
) -> Result<(), UnpackError> {
    rustix::fs::utimensat(dir, name, times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| UnpackError::entry(display, "set the times of", e))
}

fn xattr_error(display: &str, key: &[u8], source: io::Error) -> UnpackError {
    UnpackError::Entry {
        entry: display.to_owned(),
        action: "set an extended attribute on",
        source: io::Error::new(
            source.kind(),
            format!("{}: {source}", String::from_utf8_lossy(key)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_time_fractions() {
        let t = parse_pax_time(b"1700000000.25", "x").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 250_000_000));
        let t = parse_pax_time(b"12", "x").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        let t = parse_pax_time(b"-1.5", "x").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 500_000_000));
        assert!(parse_pax_time(b"1.x", "x").is_err());
    }
}

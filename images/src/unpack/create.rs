//! Creation of one entry of each kind in its (already open) parent
//! directory. An existing entry of the same name is replaced, except that
//! a directory over a directory keeps the old one and its children.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, Dev, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::beneath::remove_all;
use super::metadata::{self, Metadata};
use super::UnpackError;

/// Whether creating an entry removed an earlier entry of the same name.
pub(crate) type Replaced = bool;

/// Runs `create`; when the name exists, removes it and runs `create` again.
fn create_replacing(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    display: &str,
    mut create: impl FnMut() -> Result<(), Errno>,
) -> Result<Replaced, UnpackError> {
    match create() {
        Ok(()) => return Ok(false),
        Err(Errno::EXIST) => {}
        Err(e) => return Err(UnpackError::entry(display, "create", e)),
    }
    remove_all(dir, name).map_err(|e| UnpackError::entry(display, "replace", e))?;
    create().map_err(|e| UnpackError::entry(display, "create", e))?;
    Ok(true)
}

/// Writes a regular file with the entry's data and metadata, copying
/// through `buffer`. Returns whether an earlier entry was replaced.
pub(crate) fn regular_file(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    data: &mut impl Read,
    metadata: &Metadata,
    buffer: &mut [u8],
    display: &str,
) -> Result<Replaced, UnpackError> {
    let (mut file, replaced) = open_new_file(dir, name, display)?;
    loop {
        let n = match data.read(buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UnpackError::Read(e)),
        };
        file.write_all(&buffer[..n])
            .map_err(|e| UnpackError::entry(display, "write", e))?;
    }
    finish_file(&file, metadata, display)?;
    Ok(replaced)
}

/// Creates the empty regular file `name` in `dir`, open for writing, and
/// returns whether an earlier entry was replaced.
pub(crate) fn open_new_file(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    display: &str,
) -> Result<(File, Replaced), UnpackError> {
    let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o600);
    let mut opened = None;
    let replaced = create_replacing(dir, name, display, || {
        opened = Some(rustix::fs::openat(dir, name, flags, mode)?);
        Ok(())
    })?;
    let file = File::from(opened.expect("created file is open"));
    Ok((file, replaced))
}

/// Applies the metadata and times of a regular file once its data is
/// written.
pub(crate) fn finish_file(
    file: &File,
    metadata: &Metadata,
    display: &str,
) -> Result<(), UnpackError> {
    metadata::apply_fd(file.as_fd(), metadata, display)?;
    rustix::fs::futimens(file, &metadata.times())
        .map_err(|e| UnpackError::entry(display, "set the times of", e))
}

/// Creates a directory, or keeps an existing one, and applies owner, mode
/// and extended attributes. Its times are set by the caller once all its
/// children exist.
pub(crate) fn directory(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    metadata: &Metadata,
    display: &str,
) -> Result<Replaced, UnpackError> {
    let mode = Mode::from_raw_mode(0o700);
    let mut replaced = false;
    match rustix::fs::mkdirat(dir, name, mode) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            let existing = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| UnpackError::entry(display, "inspect", e))?;
            if FileType::from_raw_mode(existing.st_mode) != FileType::Directory {
                remove_all(dir, name).map_err(|e| UnpackError::entry(display, "replace", e))?;
                rustix::fs::mkdirat(dir, name, mode)
                    .map_err(|e| UnpackError::entry(display, "create", e))?;
                replaced = true;
            }
        }
        Err(e) => return Err(UnpackError::entry(display, "create", e)),
    }
    metadata::apply_at(dir, name, metadata, false, display)?;
    Ok(replaced)
}

/// Creates a symbolic link whose target is stored as is and never followed.
pub(crate) fn symlink(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    target: &OsStr,
    metadata: &Metadata,
    display: &str,
) -> Result<Replaced, UnpackError> {
    let replaced = create_replacing(dir, name, display, || {
        rustix::fs::symlinkat(target, dir, name)
    })?;
    metadata::apply_at(dir, name, metadata, true, display)?;
    metadata::set_times_at(dir, name, &metadata.times(), display)?;
    Ok(replaced)
}

/// Creates a character or block device or a fifo.
pub(crate) fn node(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    file_type: FileType,
    device: Dev,
    metadata: &Metadata,
    display: &str,
) -> Result<Replaced, UnpackError> {
    let replaced = create_replacing(dir, name, display, || {
        rustix::fs::mknodat(dir, name, file_type, Mode::from_raw_mode(0o600), device)
    })?;
    metadata::apply_at(dir, name, metadata, false, display)?;
    metadata::set_times_at(dir, name, &metadata.times(), display)?;
    Ok(replaced)
}

/// Links `name` in `dir` to `target_name` in `target_dir`. A symbolic link
/// as target is linked itself, not followed. A missing target means the
/// link names no earlier entry of this layer, which rejects the layer.
pub(crate) fn hard_link(
    target_dir: BorrowedFd<'_>,
    target_name: &OsStr,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    display: &str,
    target_display: &str,
) -> Result<Replaced, UnpackError> {
    let link = || rustix::fs::linkat(target_dir, target_name, dir, name, AtFlags::empty());
    match link() {
        Ok(()) => Ok(false),
        Err(Errno::NOENT) => Err(missing_target(display, target_display)),
        Err(Errno::EXIST) => {
            remove_all(dir, name).map_err(|e| UnpackError::entry(display, "replace", e))?;
            match link() {
                Ok(()) => Ok(true),
                Err(Errno::NOENT) => Err(missing_target(display, target_display)),
                Err(e) => Err(UnpackError::entry(display, "create hard link", e)),
            }
        }
        Err(e) => Err(UnpackError::entry(display, "create hard link", e)),
    }
}

fn missing_target(display: &str, target_display: &str) -> UnpackError {
    UnpackError::rejected(
        display,
        format!(
            "is a hard link to {target_display:?}, which is not an earlier entry of this layer"
        ),
    )
}

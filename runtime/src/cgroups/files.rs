//! Reading, writing and removing cgroup files and directories, with errors
//! that name the file and the value.

use std::error::Error as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use super::CgroupError;

/// Writes `value` to the cgroup file `dir/file`.
pub fn write_file(dir: &Path, file: &str, value: impl ToString) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let value = value.to_string();
    // The kernel parses each write(2) as one value, so the file is opened
    // without truncation and written in one call.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| io::Write::write_all(&mut f, value.as_bytes()))
        .map_err(|source| CgroupError::Write {
            path,
            value,
            source,
        })
}

/// Reads the cgroup file `dir/file`, without its trailing newline.
pub fn read_file(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text.trim_end().to_string()),
        Err(source) => Err(CgroupError::Read { path, source }),
    }
}

/// Turns an error of a `cgroups_rs` setter that wrote `value` to
/// `dir/file` into a [`CgroupError::Write`] that keeps the OS error.
pub fn setter_error(
    dir: &Path,
    file: &str,
    value: impl ToString,
    err: cgroups_rs::fs::error::Error,
) -> CgroupError {
    let source = match err.source().and_then(|s| s.downcast_ref::<io::Error>()) {
        Some(io_err) => match io_err.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(io_err.kind(), io_err.to_string()),
        },
        None => io::Error::other(err.to_string()),
    };
    CgroupError::Write {
        path: dir.join(file),
        value: value.to_string(),
        source,
    }
}

/// Returns the OS error number of a failed write, if the error is one.
pub fn write_errno(err: &CgroupError) -> Option<i32> {
    match err {
        CgroupError::Write { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

/// Reads the pids in `dir/cgroup.procs` and in the same file of every
/// cgroup below `dir`.
pub fn read_pids_recursive(dir: &Path, pids: &mut Vec<i32>) -> Result<(), CgroupError> {
    let text = read_file(dir, "cgroup.procs")?;
    for line in text.lines() {
        let pid = line.trim().parse::<i32>().map_err(|_| CgroupError::Parse {
            path: dir.join("cgroup.procs"),
            text: line.to_string(),
        })?;
        pids.push(pid);
    }
    for child in child_dirs(dir)? {
        read_pids_recursive(&child, pids)?;
    }
    Ok(())
}

fn child_dirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let entries = fs::read_dir(dir).map_err(|source| CgroupError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            children.push(entry.path());
        }
    }
    Ok(children)
}

/// Number of rmdir attempts per cgroup directory. With delays starting at
/// 10 ms and doubling, the attempts span about 150 ms: the schedule of
/// `cgroups_rs`'s `Controller::delete`, which follows runc.
const REMOVE_ATTEMPTS: u32 = 5;

/// Removes cgroup directory `dir` and every cgroup below it, deepest first.
/// An rmdir failing with EBUSY (processes still leaving) is retried. A
/// directory that is already gone counts as removed.
pub fn remove_cgroup_tree(dir: &Path) -> Result<(), CgroupError> {
    // Most cgroups have no children, so rmdir comes first. The directory is
    // read only when rmdir fails with EBUSY, which the kernel returns for a
    // cgroup with child cgroups or with processes.
    match fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {}
        Err(source) => {
            return Err(CgroupError::Remove {
                path: dir.to_path_buf(),
                source,
            })
        }
    }
    let children = match child_dirs(dir) {
        Ok(children) => children,
        Err(CgroupError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(err) => return Err(err),
    };
    for child in children {
        remove_cgroup_tree(&child)?;
    }

    let mut delay = Duration::from_millis(10);
    for attempt in 1..=REMOVE_ATTEMPTS {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && attempt < REMOVE_ATTEMPTS => {
                tracing::debug!(path = %dir.display(), attempt, "cgroup busy, retrying rmdir");
                thread::sleep(delay);
                delay *= 2;
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
    unreachable!("the last attempt returns")
}

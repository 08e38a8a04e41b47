//! The daemon's unix socket: a private parent directory, detection of a
//! live daemon on the same path, and removal on shutdown.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("failed to create socket directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("another hull-imaged is serving on {0}: stop it or choose another --address")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket: remove it or choose another --address")]
    NotSocket(PathBuf),
    #[error("failed to remove stale socket {path}: {source}")]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("failed to listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("failed to set the mode of {path}: {source}")]
    Chmod { path: PathBuf, source: io::Error },
}

/// A listening socket and the guard that removes its file.
pub struct BoundSocket {
    pub listener: UnixListener,
    pub guard: SocketGuard,
}

/// Removes the socket file on drop, unless another process has replaced
/// the file since.
pub struct SocketGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let still_ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == self.dev && meta.ino() == self.ino);
        if still_ours {
            if let Err(err) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), %err, "failed to remove socket");
            }
        }
    }
}

/// Binds a unix socket at `path` with mode 0600.
///
/// A missing parent directory is created with mode 0700. A socket file left
/// by a daemon that no longer runs is removed, but when a process accepts
/// connections on it the bind fails with [`SocketError::InUse`].
/// Must be called inside a tokio runtime.
pub fn bind(path: &Path) -> Result<BoundSocket, SocketError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|source| SocketError::CreateDir {
                    path: parent.to_path_buf(),
                    source,
                })?;
        }
    }

    remove_stale(path)?;

    let listener = UnixListener::bind(path).map_err(|source| SocketError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    // The 0700 parent keeps other users out between bind and chmod when
    // the daemon created it.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        SocketError::Chmod {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let meta = std::fs::symlink_metadata(path).map_err(|source| SocketError::Chmod {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(BoundSocket {
        listener,
        guard: SocketGuard {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    })
}

/// Removes `path` when it is a socket with no server listening on it.
fn remove_stale(path: &Path) -> Result<(), SocketError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SocketError::Bind {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotSocket(path.to_path_buf()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(SocketError::InUse(path.to_path_buf())),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale socket");
            std::fs::remove_file(path).map_err(|source| SocketError::RemoveStale {
                path: path.to_path_buf(),
                source,
            })
        }
        Err(source) => Err(SocketError::Bind {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_creates_private_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/imaged.sock");
        let socket = bind(&path).unwrap();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let parent_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(parent_mode, 0o700);

        drop(socket);
        assert!(!path.exists(), "socket left after drop");
    }

    #[tokio::test]
    async fn bind_rejects_live_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imaged.sock");
        let _first = bind(&path).unwrap();

        let second = bind(&path);
        assert!(matches!(second, Err(SocketError::InUse(_))));
        assert!(path.exists(), "live socket was removed");
    }

    #[tokio::test]
    async fn bind_replaces_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imaged.sock");
        // A std listener that is dropped leaves its file behind.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());

        let socket = bind(&path);
        assert!(socket.is_ok(), "{:?}", socket.err());
    }

    #[tokio::test]
    async fn bind_rejects_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imaged.sock");
        std::fs::write(&path, b"").unwrap();

        assert!(matches!(bind(&path), Err(SocketError::NotSocket(_))));
    }
}

//! Checkpoint and restore through CRIU's RPC interface (`criu swrk`), as
//! runc 1.1 drives it.
//!
//! The runtime uses RPC, not criu's command line, because only RPC lets it
//! reply to criu's notifications while the dump or restore runs. Through
//! RPC, the restored init becomes the runtime's child (`rst_sibling`), hooks
//! run and the state is recorded at `setup-namespaces` and `post-restore`,
//! and the pty master of a terminal container comes back over the socket
//! (`orphan-pts-master`).

pub mod dump;
pub mod external;
pub mod restore;
pub mod rpc;
pub mod swrk;

#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};

use rpc::{Features, Req, ReqType, Resp};
use swrk::Swrk;

/// Oldest criu that hull drives, the same minimum as runc 1.1.
pub const MIN_VERSION: i32 = 30000;

/// Level of criu's log: 4 is debug, the level runc 1.1 requests.
const LOG_LEVEL: i32 = 4;

/// Errors of checkpoint and restore.
#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error("criu binary {} not found: install criu or give its path with --criu", path.display())]
    NotFound { path: PathBuf },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("criu {found} is too old: checkpoint and restore need criu 3.0 or newer")]
    TooOld { found: String },
    #[error("criu on this system does not support {0}")]
    Unsupported(&'static str),
    #[error("criu {request} failed: {last_error} (log file: {})", log.display())]
    Failed {
        request: String,
        last_error: String,
        log: PathBuf,
    },
    #[error("invalid {flag} value {value:?}: {reason}")]
    InvalidFlag {
        flag: &'static str,
        value: String,
        reason: String,
    },
}

impl CriuError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        CriuError::Io {
            context: context.into(),
            source,
        }
    }
}

/// `--manage-cgroups-mode`: how criu dumps and restores cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ManageCgroupsMode {
    Soft,
    Full,
    Strict,
    Ignore,
}

impl ManageCgroupsMode {
    /// Returns the value of `criu_opts.manage_cgroups_mode`.
    pub fn rpc(self) -> rpc::CgMode {
        match self {
            ManageCgroupsMode::Soft => rpc::CgMode::Soft,
            ManageCgroupsMode::Full => rpc::CgMode::Full,
            ManageCgroupsMode::Strict => rpc::CgMode::Strict,
            ManageCgroupsMode::Ignore => rpc::CgMode::Ignore,
        }
    }
}

/// Parses `--empty-ns` names (runc's spec names: `network`, `ipc`...) into
/// the clone flags of `criu_opts.empty_ns`.
pub fn empty_ns_flags(names: &[String]) -> Result<u32, CriuError> {
    let mut flags = 0;
    for name in names {
        let flag = match name.as_str() {
            "network" => libc::CLONE_NEWNET,
            "ipc" => libc::CLONE_NEWIPC,
            "uts" => libc::CLONE_NEWUTS,
            "mount" => libc::CLONE_NEWNS,
            "pid" => libc::CLONE_NEWPID,
            "user" => libc::CLONE_NEWUSER,
            "cgroup" => libc::CLONE_NEWCGROUP,
            _ => {
                return Err(CriuError::InvalidFlag {
                    flag: "--empty-ns",
                    value: name.clone(),
                    reason: "expected one of network, ipc, uts, mount, pid, user, cgroup".into(),
                })
            }
        };
        flags |= flag as u32;
    }
    Ok(flags)
}

/// The criu binary that hull runs.
#[derive(Debug, Clone)]
pub struct Criu {
    pub binary: PathBuf,
}

impl Criu {
    /// Finds the binary given by `--criu`, or `criu` in `PATH`.
    pub fn locate(flag: Option<&Path>) -> Result<Criu, CriuError> {
        let name = flag.unwrap_or(Path::new("criu"));
        let found = if name.components().count() > 1 || name.is_absolute() {
            name.is_file().then(|| name.to_path_buf())
        } else {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.is_file())
            })
        };
        match found {
            Some(binary) => Ok(Criu { binary }),
            None => Err(CriuError::NotFound {
                path: name.to_path_buf(),
            }),
        }
    }

    /// Asks criu for its version and rejects one older than `min`
    /// (`major * 10000 + minor * 100 + sublevel`).
    pub fn require_version(&self, min: i32) -> Result<rpc::Version, CriuError> {
        let response = self.simple_request(Req {
            r#type: ReqType::Version as i32,
            ..Default::default()
        })?;
        let version = response.version.ok_or_else(|| {
            CriuError::Protocol(format!(
                "{} sent no version: criu before 3.0 has no VERSION request",
                self.binary.display()
            ))
        })?;
        if version.number() < min {
            return Err(CriuError::TooOld {
                found: format!(
                    "{}.{}.{}",
                    version.major_number,
                    version.minor_number,
                    version.sublevel.unwrap_or(0)
                ),
            });
        }
        Ok(version)
    }

    /// Asks criu whether it supports memory tracking (`mem_track`) or lazy
    /// pages (`lazy_pages`), whichever `features` sets to true.
    pub fn require_features(&self, features: Features) -> Result<(), CriuError> {
        let response = self.simple_request(Req {
            r#type: ReqType::FeatureCheck as i32,
            features: Some(features.clone()),
            ..Default::default()
        })?;
        let supported = response.features.unwrap_or_default();
        if features.mem_track == Some(true) && supported.mem_track != Some(true) {
            return Err(CriuError::Unsupported(
                "memory tracking (needed by --pre-dump and --parent-path)",
            ));
        }
        if features.lazy_pages == Some(true) && supported.lazy_pages != Some(true) {
            return Err(CriuError::Unsupported("lazy pages (--lazy-pages)"));
        }
        Ok(())
    }

    /// Runs one request without notifications in its own `criu swrk`.
    fn simple_request(&self, request: Req) -> Result<Resp, CriuError> {
        let mut swrk = Swrk::spawn(&self.binary, &[])?;
        let response = swrk.call(&request, |_, notify| {
            Err(CriuError::Protocol(format!(
                "unexpected criu notification {:?}",
                notify.script
            )))
        })?;
        swrk.finish();
        let name = ReqType::try_from(request.r#type).map_or("request", |t| t.name());
        if !response.success {
            return Err(CriuError::Protocol(format!(
                "criu {name} request failed: {}",
                response.cr_errmsg.as_deref().unwrap_or("no message")
            )));
        }
        Ok(response)
    }
}

/// Turns an unsuccessful final response into an error naming criu's log
/// file and the last error line in it.
pub fn check_response(request: ReqType, response: &Resp, log: &Path) -> Result<(), CriuError> {
    if response.success {
        return Ok(());
    }
    let from_log = fs::read_to_string(log)
        .ok()
        .and_then(|text| last_error_line(&text));
    let last_error = from_log
        .or_else(|| response.cr_errmsg.clone())
        .unwrap_or_else(|| {
            format!(
                "errno {}, no error line in the log",
                response.cr_errno.unwrap_or(0)
            )
        });
    Err(CriuError::Failed {
        request: request.name().to_lowercase().replace('_', "-"),
        last_error,
        log: log.to_path_buf(),
    })
}

/// Returns the last `Error` line of a criu log, without its timestamp.
/// criu writes lines such as `(00.112119) Error (criu/vdso.c:613): ...`.
pub fn last_error_line(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .map(|line| match line.strip_prefix('(') {
            Some(rest) => rest.split_once(") ").map_or(line, |(_, text)| text),
            None => line,
        })
        .find(|text| text.starts_with("Error"))
        .map(|text| text.trim_end().to_string())
}

/// Creates `path` (mode 0700 like runc) when missing and opens it as a
/// directory. criu inherits the descriptor.
fn open_dir(path: &Path, create: bool) -> Result<fs::File, CriuError> {
    use std::os::unix::fs::DirBuilderExt;
    if create {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| CriuError::io(format!("create {}", path.display()), e))?;
    }
    fs::File::open(path).map_err(|e| CriuError::io(format!("open {}", path.display()), e))
}

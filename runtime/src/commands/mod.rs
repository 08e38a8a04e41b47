//! The subcommands of `hull`, one file each, with runc's flags and output.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
mod foreground;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod restore;
pub mod resume;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use std::path::PathBuf;

/// Output format of `list` and `ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Flags that apply to every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Directory for the containers' state (tmpfs is best)
    #[arg(long, default_value = "/run/hull")]
    pub root: PathBuf,
    /// Write the log to this file instead of stderr
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Format of the log: text or json
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: crate::logging::Format,
    /// Log at debug level
    #[arg(long)]
    pub debug: bool,
    /// Manage cgroups through systemd (not supported: create fails with it)
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility: hull detects rootless mode itself
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Path of the criu binary for checkpoint and restore (default: criu in PATH)
    #[arg(long)]
    pub criu: Option<PathBuf>,
}

/// Flags shared by `create` and `run`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateFlags {
    /// Path to the root of the bundle directory, defaults to the current directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket which will receive the pty master of the container
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the pid of the container's init to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root to jail the process inside the rootfs
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors (3 to 3+N-1) to the container
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

impl CreateFlags {
    pub fn options(&self, global: &Global, id: &str) -> crate::process::CreateOptions {
        crate::process::CreateOptions {
            id: id.to_string(),
            bundle: self.bundle.clone(),
            root: global.root.clone(),
            pid_file: self.pid_file.as_ref().map(|p| absolute(p)),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            systemd_cgroup: global.systemd_cgroup,
        }
    }
}

/// Makes `path` absolute against the current directory.
pub(crate) fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

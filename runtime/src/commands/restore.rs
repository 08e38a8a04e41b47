//! `hull restore ID`: recreates a container from a checkpoint. In the
//! foreground it waits for the restored init like `run` and deletes the
//! container when it exits. With `--detach`, it returns at once.

use std::path::PathBuf;

use nix::unistd::Pid;

use super::foreground::Foreground;
use super::{absolute, CreateFlags, Global};
use crate::criu::restore::{self, RestoreOptions};
use crate::criu::{empty_ns_flags, Criu, ManageCgroupsMode};
use crate::{lifecycle, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path to the root of the bundle directory, defaults to the current directory
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Path to an AF_UNIX socket which will receive the pty master of the container
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the pid of the restored init to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility: criu restores the mounts itself
    #[arg(long)]
    pub no_pivot: bool,
    /// Path to criu image files for restoring
    #[arg(long, default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Path for saving work files and logs (default: the image path)
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Allow open tcp connections
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long)]
    pub shell_job: bool,
    /// Handle file locks, for safety
    #[arg(long)]
    pub file_locks: bool,
    /// Cgroups mode: soft, full, strict or ignore (default: criu's, soft)
    #[arg(long, value_enum)]
    pub manage_cgroups_mode: Option<ManageCgroupsMode>,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Do not make this process a subreaper for the container's orphans
    #[arg(long)]
    pub no_subreaper: bool,
    /// Create the namespace without restoring its properties (network, ipc, uts, mount, pid, user, cgroup)
    #[arg(long)]
    pub empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images
    #[arg(long)]
    pub auto_dedup: bool,
    /// Use userfaultfd to lazily restore memory pages
    #[arg(long)]
    pub lazy_pages: bool,
    /// LSM profile of the restored processes: apparmor:NAME or selinux:LABEL
    #[arg(long)]
    pub lsm_profile: Option<String>,
    /// Container id
    pub id: String,
}

impl Args {
    /// Returns the options of the restore, with paths made absolute.
    pub fn options(&self, global: &Global) -> Result<RestoreOptions> {
        let flags = CreateFlags {
            bundle: self.bundle.clone(),
            console_socket: self.console_socket.clone(),
            pid_file: self.pid_file.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: false,
            preserve_fds: 0,
        };
        Ok(RestoreOptions {
            create: flags.options(global, &self.id),
            image_path: absolute(&self.image_path),
            work_path: self.work_path.as_deref().map(absolute),
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            manage_cgroups_mode: self.manage_cgroups_mode,
            empty_ns: empty_ns_flags(&self.empty_ns)?,
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
            lsm_profile: self.lsm_profile.clone(),
            detach: self.detach,
        })
    }
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let options = args.options(global)?;
    let criu = Criu::locate(global.criu.as_deref())?;
    if args.detach {
        restore::restore(&criu, &options)?;
        return Ok(0);
    }
    let mut foreground = Foreground::new(!args.no_subreaper)?;
    let (container, master) = restore::restore(&criu, &options)?;
    if let Some(master) = master {
        foreground.attach_master(master);
    }
    let status = foreground.wait(Pid::from_raw(container.state.init_pid))?;
    lifecycle::delete(&container, true)?;
    Ok(status)
}

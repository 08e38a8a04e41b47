//! `hull checkpoint ID`: dumps a running container with criu. Without
//! `--leave-running` the container is stopped and deleted afterwards, as
//! runc 1.1 does.

use std::path::PathBuf;

use super::{absolute, Global};
use crate::container::Container;
use crate::criu::dump::{self, CheckpointOptions};
use crate::criu::{empty_ns_flags, Criu, ManageCgroupsMode};
use crate::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Path for saving criu image files
    #[arg(long, default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Path for saving work files and logs (default: the image path)
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Path for previous criu image files in pre-dump, relative to the image path
    #[arg(long)]
    pub parent_path: Option<PathBuf>,
    /// Leave the process running after checkpointing
    #[arg(long)]
    pub leave_running: bool,
    /// Allow open tcp connections
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long)]
    pub shell_job: bool,
    /// Use userfaultfd to lazily restore memory pages
    #[arg(long)]
    pub lazy_pages: bool,
    /// Descriptor that receives a byte once the lazy-pages server is ready
    #[arg(long)]
    pub status_fd: Option<i32>,
    /// ADDRESS:PORT of the page server
    #[arg(long)]
    pub page_server: Option<String>,
    /// Handle file locks, for safety
    #[arg(long)]
    pub file_locks: bool,
    /// Dump the container's memory only, leaving the container running
    #[arg(long)]
    pub pre_dump: bool,
    /// Cgroups mode: soft, full, strict or ignore (default: criu's, soft)
    #[arg(long, value_enum)]
    pub manage_cgroups_mode: Option<ManageCgroupsMode>,
    /// Dump the namespace without its properties (network, ipc, uts, mount, pid, user, cgroup)
    #[arg(long)]
    pub empty_ns: Vec<String>,
    /// Enable auto deduplication of memory images
    #[arg(long)]
    pub auto_dedup: bool,
    /// Container id
    pub id: String,
}

impl Args {
    /// Returns the options of the dump, with paths made absolute.
    pub fn options(&self) -> Result<CheckpointOptions> {
        Ok(CheckpointOptions {
            image_path: absolute(&self.image_path),
            work_path: self.work_path.as_deref().map(absolute),
            parent_path: self.parent_path.clone(),
            leave_running: self.leave_running,
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            lazy_pages: self.lazy_pages,
            status_fd: self.status_fd,
            page_server: self.page_server.clone(),
            file_locks: self.file_locks,
            pre_dump: self.pre_dump,
            manage_cgroups_mode: self.manage_cgroups_mode,
            empty_ns: empty_ns_flags(&self.empty_ns)?,
            auto_dedup: self.auto_dedup,
        })
    }
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let options = args.options()?;
    let container = Container::load(&global.root, &args.id)?;
    let criu = Criu::locate(global.criu.as_deref())?;
    dump::checkpoint(&container, &criu, &options)?;
    Ok(0)
}

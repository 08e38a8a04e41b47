//! `cp`: copies files between a container and the host, or streams them
//! as a tar archive, with docker's rules:
//!
//! - A file source is written to DEST when DEST is missing or a file, and
//!   into DEST under its own name when DEST is a directory. A DEST that
//!   ends in `/` must then be an existing directory.
//! - A directory source is copied into DEST under its own name when DEST is
//!   a directory, and becomes DEST when DEST is missing. A source ending in
//!   `/.` copies the directory's contents instead.
//! - A symlink source is copied as a symlink, unless `-L` or a trailing
//!   `/` follows it. Symlinks at the destination are followed, inside the
//!   container.
//! - Copied entries keep their mode and times. Their owner is root in the
//!   container and the calling user on the host, or with `-a` the source's
//!   uid and gid.
//!
//! Container paths are resolved by [`rootfs::ContainerFs`], below the
//! container's rootfs or the source of the bind mount that contains them,
//! and never from the host's root. Host paths are the caller's own.

mod archive;
mod rootfs;
mod rules;
#[cfg(test)]
mod tests;
mod tree;
mod writer;

use std::ffi::{OsStr, OsString};
use std::io::IsTerminal;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use rustix::fs::{FileType, Mode, OFlags};

use self::rootfs::{ContainerFs, Node};
use self::rules::{
    asserts_directory, copies_contents, given_name, parse_endpoint, plan, Endpoint, Kind, Target,
};
use self::tree::{Ownership, SourceDir};
use self::writer::{DestDir, Writer};
use super::create::{self, ROOTFS_DIR};
use super::record::State;
use super::{lifecycle, Context};

/// Options of `cp`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpOptions {
    /// Keep the source's uid and gid.
    pub archive: bool,
    /// Follow a symlink named as the source.
    pub follow_link: bool,
    /// Print no summary.
    pub quiet: bool,
}

/// `cp SOURCE DESTINATION`.
pub async fn cp(
    ctx: &Context,
    source: &str,
    destination: &str,
    options: CpOptions,
) -> anyhow::Result<ExitCode> {
    let bytes = match (parse_endpoint(source), parse_endpoint(destination)) {
        (Endpoint::Container { .. }, Endpoint::Container { .. }) => {
            bail!("copying between containers is not supported: copy to the host first")
        }
        (Endpoint::Container { container, path }, Endpoint::Host(host_path)) => {
            let fs = open_container(ctx, &container)?;
            let ownership = if options.archive {
                Ownership::Keep
            } else {
                Ownership::Set(
                    rustix::process::getuid().as_raw(),
                    rustix::process::getgid().as_raw(),
                )
            };
            let source = container_source(&fs, &path, options.follow_link)?;
            let destination = host_destination(&host_path)?;
            copy(&path, source, &host_path, destination, None, ownership)?
        }
        (Endpoint::Host(host_path), Endpoint::Container { container, path }) => {
            let fs = open_container(ctx, &container)?;
            let ownership = if options.archive {
                Ownership::Keep
            } else {
                Ownership::Set(0, 0)
            };
            let source = host_source(&host_path, options.follow_link)?;
            let destination = container_destination(&fs, &path)?;
            copy(&host_path, source, &path, destination, Some(&fs), ownership)?
        }
        (Endpoint::Container { container, path }, Endpoint::Stream) => {
            let fs = open_container(ctx, &container)?;
            let source = container_source(&fs, &path, options.follow_link)?;
            let mut sink = archive::TarSink::new(std::io::BufWriter::new(std::io::stdout().lock()));
            send(&path, &source, &mut sink)?;
            let bytes = sink.bytes;
            sink.finish()?;
            bytes
        }
        (Endpoint::Stream, Endpoint::Container { container, path }) => {
            let fs = open_container(ctx, &container)?;
            let ownership = if options.archive {
                Ownership::Keep
            } else {
                Ownership::Set(0, 0)
            };
            let resolved = fs.resolve(&container_path(&path), true)?;
            let is_dir = resolved
                .node
                .stat()
                .map_err(|err| anyhow!("failed to read {container}:{path}: {err}"))?
                .is_some_and(|stat| FileType::from_raw_mode(stat.st_mode) == FileType::Directory);
            if !is_dir {
                bail!("cannot extract a tar archive to {container}:{path}: it is not an existing directory");
            }
            archive::unpack(&fs, &resolved.path, std::io::stdin().lock(), ownership)?
        }
        (Endpoint::Stream, Endpoint::Stream)
        | (Endpoint::Stream, Endpoint::Host(_))
        | (Endpoint::Host(_), Endpoint::Stream)
        | (Endpoint::Host(_), Endpoint::Host(_)) => {
            bail!("one of SOURCE and DESTINATION must be CONTAINER:PATH")
        }
    };
    if !options.quiet && std::io::stderr().is_terminal() && destination != "-" {
        eprintln!(
            "Successfully copied {} to {destination}",
            crate::format::human_size(bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the filesystem of container `name`, mounting its rootfs again
/// when a reboot removed the mount.
fn open_container(ctx: &Context, name: &str) -> anyhow::Result<ContainerFs> {
    let record = ctx.store.find(name)?;
    match record.state {
        State::Creating => bail!(
            "container {} was not fully created: remove it with hullctl rm {}",
            record.name,
            record.name
        ),
        State::Removing => bail!("container {} is being removed", record.name),
        _ => {}
    }
    let dir = ctx.store.container_dir(&record.id);
    {
        // The lock keeps a concurrent start from mounting it twice.
        let _lock = lifecycle::lock(&dir)?;
        create::mount_rootfs(&dir, &record.rootfs)?;
    }
    let spec = create::read_spec(&dir)?;
    ContainerFs::open(&record.name, &dir.join(ROOTFS_DIR), &spec)
}

/// Makes a container path absolute: relative paths start at `/`.
fn container_path(path: &str) -> PathBuf {
    Path::new("/").join(path)
}

/// A resolved source: where it is, its path in the container if it is in
/// one, and the name that it takes in a destination directory.
struct Source<'a> {
    node: Node,
    container_path: Option<PathBuf>,
    fs: Option<&'a ContainerFs>,
    kind: Kind,
    name: Option<OsString>,
}

fn kind_of(mode: u32) -> Kind {
    if FileType::from_raw_mode(mode) == FileType::Directory {
        Kind::Directory
    } else {
        Kind::Other
    }
}

fn container_source<'a>(
    fs: &'a ContainerFs,
    path: &str,
    follow_link: bool,
) -> anyhow::Result<Source<'a>> {
    let follow = follow_link || asserts_directory(path);
    let resolved = fs.resolve(&container_path(path), follow)?;
    let stat = resolved
        .node
        .stat()
        .map_err(|err| anyhow!("failed to read {}:{path}: {err}", fs.name))?
        .ok_or_else(|| {
            anyhow!(
                "cannot copy {}:{path}: no such file or directory in the container",
                fs.name
            )
        })?;
    let name = given_name(path)
        .map(OsStr::to_owned)
        .or_else(|| resolved.path.file_name().map(OsStr::to_owned));
    Ok(Source {
        node: resolved.node,
        container_path: Some(resolved.path),
        fs: Some(fs),
        kind: kind_of(stat.st_mode),
        name,
    })
}

fn host_source(path: &str, follow_link: bool) -> anyhow::Result<Source<'static>> {
    let follow = follow_link || asserts_directory(path);
    let missing = |err: std::io::Error| anyhow!("cannot copy {path}: {err}");
    let given = Path::new(path);
    let resolved = if follow || given_name(path).is_none() {
        std::fs::canonicalize(given).map_err(missing)?
    } else {
        let parent = match given.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        std::fs::canonicalize(parent)
            .map_err(missing)?
            .join(given.file_name().unwrap_or_default())
    };
    let node = host_node(&resolved)?;
    let stat = node
        .stat()
        .map_err(missing)?
        .ok_or_else(|| anyhow!("cannot copy {path}: no such file or directory"))?;
    Ok(Source {
        node,
        container_path: None,
        fs: None,
        kind: kind_of(stat.st_mode),
        name: given_name(path)
            .map(OsStr::to_owned)
            .or_else(|| resolved.file_name().map(OsStr::to_owned)),
    })
}

/// Opens the host path `path`, absolute and without symlinks but maybe in
/// its last component, as a node.
fn host_node(path: &Path) -> anyhow::Result<Node> {
    let open_dir = |path: &Path| {
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| anyhow!("failed to open {}: {errno}", path.display()))
    };
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => Ok(Node::Entry {
            parent: open_dir(parent)?,
            name: name.to_owned(),
        }),
        _ => Ok(Node::Root(open_dir(path)?)),
    }
}

/// A resolved destination.
enum Destination {
    /// An existing directory.
    Dir(DestDir),
    /// Entry `name` of `parent`: a file, or nothing yet.
    Entry {
        parent: DestDir,
        name: OsString,
        exists: bool,
    },
}

impl Destination {
    fn kind(&self) -> Option<Kind> {
        match self {
            Destination::Dir(_) => Some(Kind::Directory),
            Destination::Entry { exists: true, .. } => Some(Kind::Other),
            Destination::Entry { exists: false, .. } => None,
        }
    }
}

fn container_destination(fs: &ContainerFs, path: &str) -> anyhow::Result<Destination> {
    let resolved = fs.resolve(&container_path(path), true)?;
    let stat = resolved
        .node
        .stat()
        .map_err(|err| anyhow!("failed to read {}:{path}: {err}", fs.name))?;
    let canonical = resolved.path;
    if stat.is_some_and(|stat| kind_of(stat.st_mode) == Kind::Directory) {
        return Ok(Destination::Dir(DestDir {
            fd: fs.open_dir(&canonical)?,
            read_only: fs.is_read_only(&canonical),
            path: Some(canonical),
            apply: false,
        }));
    }
    let (Node::Entry { parent, name }, Some(parent_path)) = (resolved.node, canonical.parent())
    else {
        bail!("cannot copy to {}:{path}: it is not a directory", fs.name);
    };
    Ok(Destination::Entry {
        parent: DestDir {
            fd: parent,
            read_only: fs.is_read_only(parent_path),
            path: Some(parent_path.to_owned()),
            apply: false,
        },
        name,
        exists: stat.is_some(),
    })
}

fn host_destination(path: &str) -> anyhow::Result<Destination> {
    let given = Path::new(path);
    let dest_dir = |fd: OwnedFd| DestDir {
        fd,
        path: None,
        read_only: false,
        apply: false,
    };
    match std::fs::metadata(given) {
        Ok(metadata) if metadata.is_dir() => {
            let fd = rustix::fs::open(
                given,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| anyhow!("failed to open {path}: {errno}"))?;
            Ok(Destination::Dir(dest_dir(fd)))
        }
        Ok(_) => {
            let resolved = std::fs::canonicalize(given)
                .map_err(|err| anyhow!("failed to resolve {path}: {err}"))?;
            let Node::Entry { parent, name } = host_node(&resolved)? else {
                bail!("cannot copy to {path}: it is not a directory");
            };
            Ok(Destination::Entry {
                parent: dest_dir(parent),
                name,
                exists: true,
            })
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let name = given
                .file_name()
                .ok_or_else(|| anyhow!("cannot copy to {path}: no such directory"))?;
            let parent = match given.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            let fd = rustix::fs::open(parent, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|errno| anyhow!("cannot copy to {path}: directory {} does not exist or cannot be opened: {errno}", parent.display()))?;
            Ok(Destination::Entry {
                parent: dest_dir(fd),
                name: name.to_owned(),
                exists: false,
            })
        }
        Err(err) => Err(anyhow!("failed to read {path}: {err}")),
    }
}

/// Copies `source` to `destination` after docker's rules, and returns the
/// bytes of file content written.
fn copy(
    source_arg: &str,
    source: Source,
    destination_arg: &str,
    destination: Destination,
    fs: Option<&ContainerFs>,
    ownership: Ownership,
) -> anyhow::Result<u64> {
    let target = plan(
        source_arg,
        source.kind,
        source.name.as_deref(),
        destination_arg,
        destination.kind(),
    )?;
    let (start, name) = match (destination, target) {
        (Destination::Dir(dir), Target::Into(name)) => (dir, Some(name)),
        (Destination::Dir(dir), Target::Contents) => (dir, None),
        (Destination::Entry { parent, name, .. }, Target::At) => (parent, Some(name)),
        _ => bail!("cannot copy {source_arg} to {destination_arg}"),
    };
    let mut writer = Writer::new(fs, start, ownership);
    match name {
        Some(name) => send_as(&source, &name, &mut writer)?,
        None => send(source_arg, &source, &mut writer)?,
    }
    Ok(writer.bytes)
}

/// Sends `source` under its own name, or its contents for `/.` sources
/// and sources without a name.
fn send(source_arg: &str, source: &Source, sink: &mut dyn tree::Sink) -> anyhow::Result<()> {
    match &source.name {
        Some(name) if !copies_contents(source_arg) => send_as(source, name, sink),
        _ => {
            if source.kind != Kind::Directory {
                bail!("cannot copy {source_arg}: it is not a directory");
            }
            let fd = open_source_dir(source)?;
            let dir = SourceDir {
                fd,
                path: source.container_path.clone(),
                fs: source.fs,
            };
            tree::send_dir(&dir, None, sink)
        }
    }
}

/// Sends `source` as the entry `name`.
fn send_as(source: &Source, name: &OsStr, sink: &mut dyn tree::Sink) -> anyhow::Result<()> {
    match &source.node {
        Node::Root(_) => {
            let dir = SourceDir {
                fd: open_source_dir(source)?,
                path: source.container_path.clone(),
                fs: source.fs,
            };
            tree::send_dir(&dir, Some(name), sink)
        }
        Node::Entry {
            parent,
            name: entry,
        } => {
            let parent = SourceDir {
                fd: parent.try_clone()?,
                path: source
                    .container_path
                    .as_ref()
                    .and_then(|path| path.parent().map(Path::to_owned)),
                fs: source.fs,
            };
            tree::send_entry(&parent, entry, name, sink)
        }
    }
}

fn open_source_dir(source: &Source) -> anyhow::Result<OwnedFd> {
    if let (Some(fs), Some(path)) = (source.fs, &source.container_path) {
        return fs.open_dir(path);
    }
    match &source.node {
        Node::Root(fd) => Ok(fd.try_clone()?),
        Node::Entry { parent, name } => rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("failed to open {}", PathBuf::from(name).display())),
    }
}

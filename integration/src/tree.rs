//! Snapshots of directory trees and their comparison, to check that two
//! ways of producing a root filesystem give the same files.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The type of a tree node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

/// Compared attributes of one path, read without following symbolic links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size of regular files, 0 for other kinds.
    pub size: u64,
    /// Hex sha256 of a regular file's contents.
    pub sha256: Option<String>,
    /// Target of a symbolic link.
    pub link: Option<PathBuf>,
    /// Device number of device nodes.
    pub rdev: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// Every path below a root, relative to it; the root itself is left out.
pub type Tree = BTreeMap<PathBuf, Node>;

/// Reads the tree below `root`.
pub fn snapshot(root: &Path) -> Tree {
    let mut tree = Tree::new();
    walk(root, root, &mut tree);
    tree
}

fn walk(root: &Path, dir: &Path, tree: &mut Tree) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        let node = read_node(&path);
        let is_dir = node.kind == Kind::Dir;
        tree.insert(path.strip_prefix(root).unwrap().to_owned(), node);
        if is_dir {
            walk(root, &path, tree);
        }
    }
}

fn read_node(path: &Path) -> Node {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let file_type = meta.file_type();
    let kind = if file_type.is_file() {
        Kind::File
    } else if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else if file_type.is_char_device() {
        Kind::CharDevice
    } else if file_type.is_block_device() {
        Kind::BlockDevice
    } else if file_type.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let is_device = matches!(kind, Kind::CharDevice | Kind::BlockDevice);
    Node {
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: if kind == Kind::File { meta.size() } else { 0 },
        sha256: (kind == Kind::File).then(|| hash_file(path)),
        link: (kind == Kind::Symlink).then(|| fs::read_link(path).unwrap()),
        rdev: if is_device { meta.rdev() } else { 0 },
        mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        xattrs: read_xattrs(path),
    }
}

fn hash_file(path: &Path) -> String {
    let mut file = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    hex::encode(hasher.finalize())
}

fn read_xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut names)
        .unwrap_or_else(|e| panic!("llistxattr {}: {e}", path.display()));
    names.truncate(n);
    let mut xattrs = BTreeMap::new();
    for name in names.split(|&b| b == 0).filter(|name| !name.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = vec![0u8; 65536];
        let n = rustix::fs::lgetxattr(path, name.as_str(), &mut value)
            .unwrap_or_else(|e| panic!("lgetxattr {} {name}: {e}", path.display()));
        value.truncate(n);
        xattrs.insert(name, value);
    }
    xattrs
}

/// Attributes that [`differences`] leaves out.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    /// Modification times of directories.
    pub dir_mtimes: bool,
    /// Modification times of symbolic links.
    pub symlink_mtimes: bool,
    /// Every modification time.
    pub mtimes: bool,
    /// Extended attributes whose name starts with one of these prefixes.
    pub xattr_prefixes: Vec<String>,
}

impl Ignore {
    fn node(&self, node: &Node) -> Node {
        let mut node = node.clone();
        let skip_mtime = self.mtimes
            || (self.dir_mtimes && node.kind == Kind::Dir)
            || (self.symlink_mtimes && node.kind == Kind::Symlink);
        if skip_mtime {
            node.mtime_ns = 0;
        }
        node.xattrs
            .retain(|name, _| !self.xattr_prefixes.iter().any(|p| name.starts_with(p)));
        node
    }
}

/// One path on which two trees differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    OnlyLeft(PathBuf),
    OnlyRight(PathBuf),
    Changed {
        path: PathBuf,
        left: Box<Node>,
        right: Box<Node>,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OnlyLeft(path) => write!(f, "only in left: {}", path.display()),
            Self::OnlyRight(path) => write!(f, "only in right: {}", path.display()),
            Self::Changed { path, left, right } => {
                write!(
                    f,
                    "{} differs:\n  left:  {left:?}\n  right: {right:?}",
                    path.display()
                )
            }
        }
    }
}

/// Lists the paths where `left` and `right` differ, after `ignore`.
pub fn differences(left: &Tree, right: &Tree, ignore: &Ignore) -> Vec<Difference> {
    let mut found = Vec::new();
    for (path, node) in left {
        match right.get(path) {
            None => found.push(Difference::OnlyLeft(path.clone())),
            Some(other) => {
                let (a, b) = (ignore.node(node), ignore.node(other));
                if a != b {
                    found.push(Difference::Changed {
                        path: path.clone(),
                        left: Box::new(a),
                        right: Box::new(b),
                    });
                }
            }
        }
    }
    for path in right.keys().filter(|path| !left.contains_key(*path)) {
        found.push(Difference::OnlyRight(path.clone()));
    }
    found
}

/// Panics with the first differences when the trees below `left` and
/// `right` differ after `ignore`.
pub fn assert_same_tree(left: &Path, right: &Path, ignore: &Ignore) {
    let (a, b) = (snapshot(left), snapshot(right));
    let found = differences(&a, &b, ignore);
    if !found.is_empty() {
        let first: Vec<String> = found.iter().take(20).map(ToString::to_string).collect();
        panic!(
            "{} and {} differ on {} paths (left has {}, right has {}), first ones:\n{}",
            left.display(),
            right.display(),
            found.len(),
            a.len(),
            b.len(),
            first.join("\n")
        );
    }
}

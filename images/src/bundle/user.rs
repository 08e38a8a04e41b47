//! Resolution of the image's `User` against the image's own `/etc/passwd`
//! and `/etc/group`.
//!
//! Both files are opened with `openat2(RESOLVE_IN_ROOT)` below a handle of
//! the rootfs, so a symlink in the image (`/etc/passwd -> /etc/shadow` or a
//! `..` chain) resolves inside the rootfs and never reaches a host file.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::BundleError;

pub const PASSWD_PATH: &str = "/etc/passwd";
pub const GROUP_PATH: &str = "/etc/group";

/// Largest passwd or group file read; larger ones are an error, so a huge
/// file in an image cannot exhaust memory.
const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// The process identity for `process.user` and `HOME`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Groups whose member list in `/etc/group` names the user, without the
    /// primary group, sorted.
    pub additional_gids: Vec<u32>,
    /// Home directory from the passwd entry, when there is one.
    pub home: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `spec` (`uid`, `uid:gid`, `name`, `name:group`, or empty for
/// root) in the rootfs at `rootfs`.
///
/// A numeric uid needs no passwd entry and then gets gid 0. A name that is
/// not in the file is an error naming the name and the file.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser, BundleError> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let malformed = user_part.is_empty() && group_part.is_some()
        || group_part.is_some_and(|g| g.is_empty() || g.contains(':'));
    if malformed {
        return Err(BundleError::InvalidUser {
            user: spec.to_owned(),
        });
    }
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let root = open_root(rootfs)?;
    let passwd = read_file(&root, rootfs, PASSWD_PATH)?
        .map(|text| parse_passwd(&text))
        .unwrap_or_default();

    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|e| e.uid == uid),
        Err(_) => Some(passwd.iter().find(|e| e.name == user_part).ok_or_else(|| {
            BundleError::UserNotFound {
                user: user_part.to_owned(),
                file: PASSWD_PATH,
            }
        })?),
    };
    let uid = match entry {
        Some(entry) => entry.uid,
        None => user_part
            .parse::<u32>()
            .expect("only numeric uids lack an entry"),
    };

    let groups = match read_file(&root, rootfs, GROUP_PATH)? {
        Some(text) => parse_group(&text),
        None => Vec::new(),
    };
    let gid = match group_part {
        None => entry.map_or(0, |e| e.gid),
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|g| g.name == group)
                .map(|g| g.gid)
                .ok_or_else(|| BundleError::GroupNotFound {
                    group: group.to_owned(),
                    file: GROUP_PATH,
                })?,
        },
    };

    let mut additional_gids: Vec<u32> = match entry {
        Some(entry) => groups
            .iter()
            .filter(|g| g.gid != gid && g.members.iter().any(|m| *m == entry.name))
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();

    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.clone()).filter(|h| !h.is_empty()),
    })
}

fn open_root(rootfs: &Path) -> Result<OwnedFd, BundleError> {
    rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| BundleError::OpenRootfs {
        path: rootfs.to_path_buf(),
        source: e.into(),
    })
}

/// Reads `path` (absolute inside the image) below `root`, or returns `None`
/// when it does not exist.
fn read_file(root: &OwnedFd, rootfs: &Path, path: &str) -> Result<Option<String>, BundleError> {
    let host_path = || rootfs.join(path.trim_start_matches('/'));
    let io_error = |source: std::io::Error| BundleError::ReadFile {
        path: host_path(),
        source,
    };
    // O_NONBLOCK keeps a FIFO planted at the path from blocking the open.
    let fd = match rustix::fs::openat2(
        root,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io_error(e.into())),
    };
    let file = File::from(fd);
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.is_file() {
        return Err(BundleError::NotRegularFile { path: host_path() });
    }
    if metadata.len() > MAX_FILE_SIZE {
        return Err(BundleError::FileTooLarge {
            path: host_path(),
            size: metadata.len(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Parses `name:password:uid:gid:gecos:home:shell` lines, skipping comments
/// and malformed lines as glibc does.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 7 || fields[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: fields[0].to_owned(),
                uid: fields[2].parse().ok()?,
                gid: fields[3].parse().ok()?,
                home: fields[5].to_owned(),
            })
        })
        .collect()
}

/// Parses `name:password:gid:member,member` lines.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() < 4 || fields[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: fields[0].to_owned(),
                gid: fields[2].parse().ok()?,
                members: fields[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        broken line\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n\
        nohome:x:1001:1001::::\n";
    const GROUP: &str = "root:x:0:\n\
        app:x:1000:\n\
        wheel:x:10:root,app\n\
        audio:x:29: app , other\n\
        staff:x:50:other\n";

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        dir
    }

    #[test]
    fn empty_is_root() {
        let dir = rootfs();
        let user = resolve(dir.path(), "").unwrap();
        assert_eq!((user.uid, user.gid), (0, 0));
        assert_eq!(user.additional_gids, vec![10]);
        assert_eq!(user.home.as_deref(), Some("/root"));
    }

    #[test]
    fn name_resolves_ids_groups_and_home() {
        let dir = rootfs();
        let user = resolve(dir.path(), "app").unwrap();
        assert_eq!(user.uid, 1000);
        assert_eq!(user.gid, 1000);
        assert_eq!(user.additional_gids, vec![10, 29]);
        assert_eq!(user.home.as_deref(), Some("/home/app"));
    }

    #[test]
    fn name_and_group_forms() {
        let dir = rootfs();
        let named = resolve(dir.path(), "app:staff").unwrap();
        assert_eq!((named.uid, named.gid), (1000, 50));
        assert_eq!(named.additional_gids, vec![10, 29]);
        let numeric_group = resolve(dir.path(), "app:7").unwrap();
        assert_eq!((numeric_group.uid, numeric_group.gid), (1000, 7));
        let uid_and_name = resolve(dir.path(), "1000:wheel").unwrap();
        assert_eq!((uid_and_name.uid, uid_and_name.gid), (1000, 10));
        assert_eq!(uid_and_name.additional_gids, vec![29]);
    }

    #[test]
    fn numeric_uid_without_entry() {
        let dir = rootfs();
        let user = resolve(dir.path(), "4242").unwrap();
        assert_eq!((user.uid, user.gid), (4242, 0));
        assert!(user.additional_gids.is_empty());
        assert_eq!(user.home, None);
        let with_gid = resolve(dir.path(), "4242:4243").unwrap();
        assert_eq!((with_gid.uid, with_gid.gid), (4242, 4243));
    }

    #[test]
    fn numeric_uid_uses_entry_gid() {
        let dir = rootfs();
        let user = resolve(dir.path(), "1001").unwrap();
        assert_eq!((user.uid, user.gid), (1001, 1001));
        assert_eq!(user.home, None);
    }

    #[test]
    fn unknown_names_are_errors() {
        let dir = rootfs();
        let user = resolve(dir.path(), "ghost").unwrap_err().to_string();
        assert!(user.contains("ghost"), "{user}");
        assert!(user.contains("/etc/passwd"), "{user}");
        let group = resolve(dir.path(), "app:ghosts").unwrap_err().to_string();
        assert!(group.contains("ghosts"), "{group}");
        assert!(group.contains("/etc/group"), "{group}");
    }

    #[test]
    fn malformed_specs_are_errors() {
        let dir = rootfs();
        for bad in [":0", "app:", "a:b:c"] {
            let err = resolve(dir.path(), bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn missing_files_allow_numeric_ids_only() {
        let dir = tempfile::tempdir().unwrap();
        let user = resolve(dir.path(), "5:6").unwrap();
        assert_eq!((user.uid, user.gid), (5, 6));
        let err = resolve(dir.path(), "app").unwrap_err().to_string();
        assert!(err.contains("app") && err.contains("/etc/passwd"), "{err}");
    }

    #[test]
    fn symlinked_passwd_to_host_not_followed() {
        let host = tempfile::tempdir().unwrap();
        let host_passwd = host.path().join("passwd");
        fs::write(&host_passwd, "hostonly:x:777:777::/host:/bin/sh\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(&host_passwd, dir.path().join("etc/passwd")).unwrap();

        let err = resolve(dir.path(), "hostonly").unwrap_err().to_string();
        assert!(err.contains("hostonly"), "{err}");

        // A relative chain of `..` stays at the rootfs too.
        let dotdot = "../../../../../../../../..".to_owned() + host_passwd.to_str().unwrap();
        fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink(dotdot, dir.path().join("etc/passwd")).unwrap();
        assert!(resolve(dir.path(), "hostonly").is_err());

        // The same target inside the rootfs is read through the symlink.
        let inside = dir.path().join(host_passwd.strip_prefix("/").unwrap());
        fs::create_dir_all(inside.parent().unwrap()).unwrap();
        fs::write(&inside, "inside:x:778:778::/in:/bin/sh\n").unwrap();
        let user = resolve(dir.path(), "inside").unwrap();
        assert_eq!(user.uid, 778);
    }

    #[test]
    fn fifo_passwd_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        let fifo = dir.path().join("etc/passwd");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = resolve(dir.path(), "0").unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}

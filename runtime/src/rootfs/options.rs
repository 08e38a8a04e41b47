//! Parsing of the fstab-style `options` of a spec mount, with the option
//! names and meanings runc 1.1 accepts.

use super::sys::{
    MountAttr, ATTR_ATIME_MASK, ATTR_NOATIME, ATTR_NODEV, ATTR_NODIRATIME, ATTR_NOEXEC,
    ATTR_NOSUID, ATTR_NOSYMFOLLOW, ATTR_RDONLY, ATTR_RELATIME, ATTR_STRICTATIME,
};

pub const MS_RDONLY: u64 = libc::MS_RDONLY;
pub const MS_NOSUID: u64 = libc::MS_NOSUID;
pub const MS_NODEV: u64 = libc::MS_NODEV;
pub const MS_NOEXEC: u64 = libc::MS_NOEXEC;
pub const MS_SYNCHRONOUS: u64 = libc::MS_SYNCHRONOUS;
pub const MS_REMOUNT: u64 = libc::MS_REMOUNT;
pub const MS_MANDLOCK: u64 = libc::MS_MANDLOCK;
pub const MS_DIRSYNC: u64 = libc::MS_DIRSYNC;
pub const MS_NOSYMFOLLOW: u64 = 256;
pub const MS_NOATIME: u64 = libc::MS_NOATIME;
pub const MS_NODIRATIME: u64 = libc::MS_NODIRATIME;
pub const MS_BIND: u64 = libc::MS_BIND;
pub const MS_REC: u64 = libc::MS_REC;
pub const MS_SILENT: u64 = libc::MS_SILENT;
pub const MS_RELATIME: u64 = libc::MS_RELATIME;
pub const MS_STRICTATIME: u64 = libc::MS_STRICTATIME;
pub const MS_LAZYTIME: u64 = libc::MS_LAZYTIME;
pub const MS_SHARED: u64 = libc::MS_SHARED;
pub const MS_SLAVE: u64 = libc::MS_SLAVE;
pub const MS_PRIVATE: u64 = libc::MS_PRIVATE;
pub const MS_UNBINDABLE: u64 = libc::MS_UNBINDABLE;

/// Options that set (`false`) or clear (`true`) an `MS_*` flag.
const FLAG_OPTIONS: &[(&str, bool, u64)] = &[
    ("async", true, MS_SYNCHRONOUS),
    ("atime", true, MS_NOATIME),
    ("bind", false, MS_BIND),
    ("dev", true, MS_NODEV),
    ("diratime", true, MS_NODIRATIME),
    ("dirsync", false, MS_DIRSYNC),
    ("exec", true, MS_NOEXEC),
    ("lazytime", false, MS_LAZYTIME),
    ("loud", true, MS_SILENT),
    ("mand", false, MS_MANDLOCK),
    ("noatime", false, MS_NOATIME),
    ("nodev", false, MS_NODEV),
    ("nodiratime", false, MS_NODIRATIME),
    ("noexec", false, MS_NOEXEC),
    ("nolazytime", true, MS_LAZYTIME),
    ("nomand", true, MS_MANDLOCK),
    ("norelatime", true, MS_RELATIME),
    ("nostrictatime", true, MS_STRICTATIME),
    ("nosuid", false, MS_NOSUID),
    ("nosymfollow", false, MS_NOSYMFOLLOW),
    ("rbind", false, MS_BIND | MS_REC),
    ("relatime", false, MS_RELATIME),
    ("remount", false, MS_REMOUNT),
    ("ro", false, MS_RDONLY),
    ("rw", true, MS_RDONLY),
    ("silent", false, MS_SILENT),
    ("strictatime", false, MS_STRICTATIME),
    ("suid", true, MS_NOSUID),
    ("sync", false, MS_SYNCHRONOUS),
    ("symfollow", true, MS_NOSYMFOLLOW),
];

/// Propagation options and the `mount(2)` flags they stand for.
const PROPAGATION_OPTIONS: &[(&str, u64)] = &[
    ("private", MS_PRIVATE),
    ("rprivate", MS_PRIVATE | MS_REC),
    ("slave", MS_SLAVE),
    ("rslave", MS_SLAVE | MS_REC),
    ("shared", MS_SHARED),
    ("rshared", MS_SHARED | MS_REC),
    ("unbindable", MS_UNBINDABLE),
    ("runbindable", MS_UNBINDABLE | MS_REC),
];

/// Options applied with `mount_setattr(AT_RECURSIVE)` to the whole mount
/// tree: set (`false`) or clear (`true`) a `MOUNT_ATTR_*` bit.
const RECURSIVE_ATTR_OPTIONS: &[(&str, bool, u64)] = &[
    ("rro", false, ATTR_RDONLY),
    ("rrw", true, ATTR_RDONLY),
    ("rnosuid", false, ATTR_NOSUID),
    ("rsuid", true, ATTR_NOSUID),
    ("rnodev", false, ATTR_NODEV),
    ("rdev", true, ATTR_NODEV),
    ("rnoexec", false, ATTR_NOEXEC),
    ("rexec", true, ATTR_NOEXEC),
    ("rnodiratime", false, ATTR_NODIRATIME),
    ("rdiratime", true, ATTR_NODIRATIME),
    ("rrelatime", false, ATTR_RELATIME),
    ("rnorelatime", true, ATTR_RELATIME),
    ("rnoatime", false, ATTR_NOATIME),
    ("ratime", true, ATTR_NOATIME),
    ("rstrictatime", false, ATTR_STRICTATIME),
    ("rnostrictatime", true, ATTR_STRICTATIME),
    ("rnosymfollow", false, ATTR_NOSYMFOLLOW),
    ("rsymfollow", true, ATTR_NOSYMFOLLOW),
];

/// Returns the mount options the runtime applies, sorted, as `hull features`
/// lists them. `remount` is left out because it works on bind mounts only.
pub fn known_options() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = FLAG_OPTIONS
        .iter()
        .map(|(name, _, _)| *name)
        .chain(PROPAGATION_OPTIONS.iter().map(|(name, _)| *name))
        .chain(RECURSIVE_ATTR_OPTIONS.iter().map(|(name, _, _)| *name))
        .filter(|name| *name != "remount")
        .collect();
    names.sort_unstable();
    names
}

/// The parsed `options` of one spec mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// `MS_*` flags the options set, the last option winning.
    pub flags: u64,
    /// `MS_*` flags an option cleared explicitly (`rw`, `suid`, `exec`...).
    pub cleared: u64,
    /// Propagation changes in spec order, each `MS_SHARED`/`MS_SLAVE`/
    /// `MS_PRIVATE`/`MS_UNBINDABLE`, possibly with `MS_REC`.
    pub propagation: Vec<u64>,
    /// Attributes for the whole mount tree (`rro`, `rnosuid`...).
    pub recursive_attr: MountAttr,
    /// Options missing from the table, passed to the file system.
    pub data: Vec<String>,
    /// `tmpcopyup`: copy the destination's contents into the new tmpfs.
    pub copy_up: bool,
    /// `idmap` or `ridmap`, the last one given winning.
    pub idmap: Option<IdMapScope>,
}

/// The mounts of a bind mount tree that an id mapping applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdMapScope {
    /// `idmap`: the top mount only, even for `rbind`.
    Top,
    /// `ridmap`: every mount of the tree (`mount_setattr` with `AT_RECURSIVE`).
    Recursive,
}

impl MountOptions {
    /// Returns true for `bind` and `rbind`.
    pub fn is_bind(&self) -> bool {
        self.flags & MS_BIND != 0
    }

    /// Returns true for `rbind`.
    pub fn is_recursive(&self) -> bool {
        self.flags & MS_REC != 0
    }

    /// Returns true when a flag beyond `bind`/`rbind`/`remount` requests a
    /// change of the mount's attributes.
    pub fn changes_attributes(&self) -> bool {
        self.flags & !(MS_BIND | MS_REC | MS_REMOUNT) != 0 || self.cleared != 0
    }

    /// Returns the per-mount attributes the flags ask for. Bits only change
    /// when an option names them: `ro` sets read-only, `rw` clears it, and
    /// an option absent from the list keeps what the mount already has.
    pub fn mount_attr(&self) -> MountAttr {
        let mut attr = MountAttr::default();
        let pairs = [
            (MS_RDONLY, ATTR_RDONLY),
            (MS_NOSUID, ATTR_NOSUID),
            (MS_NODEV, ATTR_NODEV),
            (MS_NOEXEC, ATTR_NOEXEC),
            (MS_NODIRATIME, ATTR_NODIRATIME),
            (MS_NOSYMFOLLOW, ATTR_NOSYMFOLLOW),
        ];
        for (flag, bit) in pairs {
            if self.flags & flag != 0 {
                attr.attr_set |= bit;
            } else if self.cleared & flag != 0 {
                attr.attr_clr |= bit;
            }
        }
        // Precedence of mount(2): noatime, then strictatime, then relatime.
        let atime = if self.flags & MS_NOATIME != 0 {
            Some(ATTR_NOATIME)
        } else if self.flags & MS_STRICTATIME != 0 {
            Some(ATTR_STRICTATIME)
        } else if self.flags & MS_RELATIME != 0 {
            Some(ATTR_RELATIME)
        } else {
            None
        };
        if let Some(mode) = atime {
            attr.attr_set |= mode;
            attr.attr_clr |= ATTR_ATIME_MASK;
        }
        attr
    }

    /// Returns the superblock flags as `fsconfig(2)` flag names.
    pub fn superblock_flags(&self) -> Vec<&'static str> {
        let table = [
            (MS_RDONLY, "ro"),
            (MS_SYNCHRONOUS, "sync"),
            (MS_DIRSYNC, "dirsync"),
            (MS_MANDLOCK, "mand"),
            (MS_LAZYTIME, "lazytime"),
        ];
        table
            .iter()
            .filter(|(flag, _)| self.flags & flag != 0)
            .map(|(_, name)| *name)
            .collect()
    }

    /// Returns the file system options as they appear in `mount(2)` data.
    pub fn data_string(&self) -> String {
        self.data.join(",")
    }
}

/// Parses spec mount options. Options absent from the tables go to
/// [`MountOptions::data`] in order. `defaults` has no effect.
pub fn parse_mount_options<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let mut parsed = MountOptions::default();
    for option in options {
        let option = option.as_ref();
        if option == "defaults" {
            continue;
        }
        if option == "tmpcopyup" {
            parsed.copy_up = true;
            continue;
        }
        if option == "idmap" {
            parsed.idmap = Some(IdMapScope::Top);
            continue;
        }
        if option == "ridmap" {
            parsed.idmap = Some(IdMapScope::Recursive);
            continue;
        }
        if let Some(&(_, clear, flag)) = FLAG_OPTIONS.iter().find(|(name, ..)| *name == option) {
            if clear {
                parsed.flags &= !flag;
                parsed.cleared |= flag;
            } else {
                parsed.flags |= flag;
                parsed.cleared &= !flag;
            }
            continue;
        }
        if let Some(&(_, flag)) = PROPAGATION_OPTIONS.iter().find(|(name, _)| *name == option) {
            parsed.propagation.push(flag);
            continue;
        }
        if let Some(&(_, clear, bit)) = RECURSIVE_ATTR_OPTIONS
            .iter()
            .find(|(name, ..)| *name == option)
        {
            let attr = &mut parsed.recursive_attr;
            if clear {
                attr.attr_clr |= bit;
                attr.attr_set &= !bit;
            } else {
                attr.attr_set |= bit;
                attr.attr_clr &= !bit;
                // mount_setattr(2) takes an access-time mode only together
                // with the whole access-time mask in attr_clr.
                if bit & ATTR_ATIME_MASK == bit {
                    attr.attr_clr |= ATTR_ATIME_MASK;
                }
            }
            continue;
        }
        parsed.data.push(option.to_string());
    }
    parsed
}

/// Splits `mount(2)`-style data (`a=b,c`) into `fsconfig(2)` parameters:
/// `(key, Some(value))` for `key=value`, `(key, None)` for a bare flag.
pub fn split_data(data: &[String]) -> Vec<(String, Option<String>)> {
    data.iter()
        .flat_map(|entry| entry.split(','))
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((key, value)) => (key.to_string(), Some(value.to_string())),
            None => (item.to_string(), None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_table_sets_and_clears() {
        let cases: &[(&str, u64, u64)] = &[
            ("ro", MS_RDONLY, 0),
            ("rw", 0, MS_RDONLY),
            ("nosuid", MS_NOSUID, 0),
            ("suid", 0, MS_NOSUID),
            ("nodev", MS_NODEV, 0),
            ("dev", 0, MS_NODEV),
            ("noexec", MS_NOEXEC, 0),
            ("exec", 0, MS_NOEXEC),
            ("sync", MS_SYNCHRONOUS, 0),
            ("async", 0, MS_SYNCHRONOUS),
            ("dirsync", MS_DIRSYNC, 0),
            ("remount", MS_REMOUNT, 0),
            ("mand", MS_MANDLOCK, 0),
            ("nomand", 0, MS_MANDLOCK),
            ("atime", 0, MS_NOATIME),
            ("noatime", MS_NOATIME, 0),
            ("diratime", 0, MS_NODIRATIME),
            ("nodiratime", MS_NODIRATIME, 0),
            ("bind", MS_BIND, 0),
            ("rbind", MS_BIND | MS_REC, 0),
            ("relatime", MS_RELATIME, 0),
            ("norelatime", 0, MS_RELATIME),
            ("strictatime", MS_STRICTATIME, 0),
            ("nostrictatime", 0, MS_STRICTATIME),
            ("silent", MS_SILENT, 0),
            ("loud", 0, MS_SILENT),
            ("lazytime", MS_LAZYTIME, 0),
            ("nolazytime", 0, MS_LAZYTIME),
            ("nosymfollow", MS_NOSYMFOLLOW, 0),
            ("symfollow", 0, MS_NOSYMFOLLOW),
        ];
        for &(option, flags, cleared) in cases {
            let parsed = parse_mount_options(&[option]);
            assert_eq!(parsed.flags, flags, "flags of {option}");
            assert_eq!(parsed.cleared, cleared, "cleared flags of {option}");
            assert!(parsed.data.is_empty(), "data of {option}");
        }
    }

    #[test]
    fn last_option_wins() {
        let parsed = parse_mount_options(&["ro", "rw"]);
        assert_eq!(parsed.flags & MS_RDONLY, 0);
        assert_eq!(parsed.cleared, MS_RDONLY);

        let parsed = parse_mount_options(&["rw", "ro"]);
        assert_eq!(parsed.flags, MS_RDONLY);
        assert_eq!(parsed.cleared, 0);
    }

    #[test]
    fn unknown_options_go_to_data() {
        let parsed = parse_mount_options(&["nosuid", "mode=755", "size=65536k", "newinstance"]);
        assert_eq!(parsed.flags, MS_NOSUID);
        assert_eq!(parsed.data, ["mode=755", "size=65536k", "newinstance"]);
        assert_eq!(parsed.data_string(), "mode=755,size=65536k,newinstance");
    }

    #[test]
    fn defaults_and_tmpcopyup() {
        let parsed = parse_mount_options(&["defaults", "tmpcopyup"]);
        assert_eq!(parsed.flags, 0);
        assert!(parsed.data.is_empty());
        assert!(parsed.copy_up);
    }

    #[test]
    fn idmap_options_last_wins() {
        assert_eq!(parse_mount_options(&["bind"]).idmap, None);
        let parsed = parse_mount_options(&["rbind", "idmap"]);
        assert_eq!(parsed.idmap, Some(IdMapScope::Top));
        assert!(parsed.data.is_empty());
        let parsed = parse_mount_options(&["idmap", "ridmap"]);
        assert_eq!(parsed.idmap, Some(IdMapScope::Recursive));
        let parsed = parse_mount_options(&["ridmap", "idmap"]);
        assert_eq!(parsed.idmap, Some(IdMapScope::Top));
    }

    #[test]
    fn propagation_options_keep_order() {
        let parsed = parse_mount_options(&[
            "shared",
            "rslave",
            "private",
            "runbindable",
            "rshared",
            "slave",
            "rprivate",
            "unbindable",
        ]);
        assert_eq!(
            parsed.propagation,
            [
                MS_SHARED,
                MS_SLAVE | MS_REC,
                MS_PRIVATE,
                MS_UNBINDABLE | MS_REC,
                MS_SHARED | MS_REC,
                MS_SLAVE,
                MS_PRIVATE | MS_REC,
                MS_UNBINDABLE,
            ]
        );
        assert_eq!(parsed.flags, 0);
    }

    #[test]
    fn recursive_attributes() {
        let parsed = parse_mount_options(&["rro", "rnosuid", "rdev", "rnoatime"]);
        let attr = parsed.recursive_attr;
        assert_eq!(attr.attr_set, ATTR_RDONLY | ATTR_NOSUID | ATTR_NOATIME);
        assert_eq!(attr.attr_clr, ATTR_NODEV | ATTR_ATIME_MASK);
        assert_eq!(parsed.flags, 0);
    }

    #[test]
    fn mount_attr_from_flags() {
        let parsed = parse_mount_options(&["ro", "nosuid", "nodev", "noexec", "relatime"]);
        let attr = parsed.mount_attr();
        assert_eq!(
            attr.attr_set,
            ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC | ATTR_RELATIME
        );
        assert_eq!(attr.attr_clr, ATTR_ATIME_MASK);

        let parsed = parse_mount_options(&["rw", "exec", "strictatime"]);
        let attr = parsed.mount_attr();
        assert_eq!(attr.attr_set, ATTR_STRICTATIME);
        assert_eq!(attr.attr_clr, ATTR_RDONLY | ATTR_NOEXEC | ATTR_ATIME_MASK);

        let parsed = parse_mount_options(&["rbind"]);
        assert!(parsed.mount_attr().is_empty());
        assert!(!parsed.changes_attributes());
    }

    #[test]
    fn superblock_flags_for_fsconfig() {
        let parsed = parse_mount_options(&["ro", "sync", "nosuid", "dirsync"]);
        assert_eq!(parsed.superblock_flags(), ["ro", "sync", "dirsync"]);
    }

    #[test]
    fn split_data_into_parameters() {
        let data = vec!["mode=755".to_string(), "newinstance,gid=5".to_string()];
        let params = split_data(&data);
        assert_eq!(
            params,
            [
                ("mode".to_string(), Some("755".to_string())),
                ("newinstance".to_string(), None),
                ("gid".to_string(), Some("5".to_string())),
            ]
        );
    }
}

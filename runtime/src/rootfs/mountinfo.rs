//! Parsing of `/proc/<pid>/mountinfo` (see proc(5)).

use std::path::PathBuf;

/// One line of `mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount id, as `statx(STATX_MNT_ID)` reports it.
    pub id: u64,
    pub parent_id: u64,
    /// Path of the mounted directory inside its file system.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,nosuid,relatime`).
    pub mount_options: String,
    /// Optional fields such as `shared:1` and `master:2`.
    pub optional: Vec<String>,
    pub fs_type: String,
    pub source: String,
    /// Superblock options (`rw,cpu,cpuacct`).
    pub super_options: String,
}

impl MountInfo {
    /// Returns true when the mount is in a peer group (`shared:N`).
    pub fn is_shared(&self) -> bool {
        self.optional
            .iter()
            .any(|field| field.starts_with("shared:"))
    }
}

/// Decodes the octal escapes (`\040` for a space) the kernel writes for
/// space, tab, newline and backslash.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(value) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one `mountinfo` line and returns `None` for a malformed line.
pub fn parse_line(line: &str) -> Option<MountInfo> {
    let (left, right) = line.split_once(" - ")?;
    let mut fields = left.split(' ');
    let id = fields.next()?.parse().ok()?;
    let parent_id = fields.next()?.parse().ok()?;
    let _device = fields.next()?;
    let root = PathBuf::from(unescape(fields.next()?));
    let mount_point = PathBuf::from(unescape(fields.next()?));
    let mount_options = fields.next()?.to_string();
    let optional = fields.map(str::to_string).collect();
    let mut fields = right.split(' ');
    let fs_type = fields.next()?.to_string();
    let source = unescape(fields.next()?);
    let super_options = fields.next().unwrap_or_default().to_string();
    Some(MountInfo {
        id,
        parent_id,
        root,
        mount_point,
        mount_options,
        optional,
        fs_type,
        source,
        super_options,
    })
}

/// Parses the whole `mountinfo` text, skipping malformed lines.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

/// Reads and parses `/proc/self/mountinfo`.
pub fn read_own() -> std::io::Result<Vec<MountInfo>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_line_with_optional_fields() {
        let line = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue";
        let info = parse_line(line).expect("valid line");
        assert_eq!(info.id, 36);
        assert_eq!(info.parent_id, 35);
        assert_eq!(info.root, PathBuf::from("/mnt1"));
        assert_eq!(info.mount_point, PathBuf::from("/mnt two"));
        assert_eq!(info.mount_options, "rw,noatime");
        assert_eq!(info.optional, ["master:1", "shared:7"]);
        assert!(info.is_shared());
        assert_eq!(info.fs_type, "ext3");
        assert_eq!(info.source, "/dev/root");
        assert_eq!(info.super_options, "rw,errors=continue");
    }

    #[test]
    fn parse_line_without_optional_fields() {
        let line = "76 75 0:29 /refc1 /sys/fs/cgroup/cpu ro,nosuid - cgroup cgroup rw,cpu";
        let info = parse_line(line).expect("valid line");
        assert!(info.optional.is_empty());
        assert!(!info.is_shared());
        assert_eq!(info.super_options, "rw,cpu");
    }

    #[test]
    fn malformed_line_is_skipped() {
        assert!(parse_line("garbage").is_none());
        assert_eq!(
            parse("garbage\n1 0 0:1 / / rw - ext4 /dev/vda rw\n").len(),
            1
        );
    }
}

//! The overlay option string for callers that call mount(2) themselves.

use std::path::{Path, PathBuf};

/// Builds the overlay data string: `lowerdir=TOP:...:BOTTOM` and, with
/// `upper_work`, `,upperdir=UPPER,workdir=WORK`.
///
/// Overlayfs splits `lowerdir` at `:`, so `:` and `\` in paths are escaped
/// with a backslash.
/// NOTE: mount(2) splits its data at `,` with no escape, so paths that
/// contain a comma do not work in this string. `mount_rootfs` has no such
/// limit when the kernel accepts `lowerdir+`.
pub fn overlay_mount_options(
    lower_dirs_top_first: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
) -> String {
    let lower = lower_dirs_top_first
        .iter()
        .map(|dir| escape(dir))
        .collect::<Vec<_>>()
        .join(":");
    let mut options = format!("lowerdir={lower}");
    if let Some((upper, work)) = upper_work {
        options.push_str(&format!(
            ",upperdir={},workdir={}",
            escape(upper),
            escape(work)
        ));
    }
    options
}

/// Escapes `\` and `:` of `path` for a `lowerdir` list.
pub(crate) fn escape(path: &Path) -> String {
    let mut escaped = String::new();
    for c in path.to_string_lossy().chars() {
        if c == '\\' || c == ':' {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_options_writable() {
        let lowers = vec![PathBuf::from("/s/2/fs"), PathBuf::from("/s/1/fs")];
        let options =
            overlay_mount_options(&lowers, Some((Path::new("/r/upper"), Path::new("/r/work"))));
        assert_eq!(
            options,
            "lowerdir=/s/2/fs:/s/1/fs,upperdir=/r/upper,workdir=/r/work"
        );
    }

    #[test]
    fn snapshot_options_escape_colons() {
        let lowers = vec![PathBuf::from("/s/a:b"), PathBuf::from("/s/c\\d")];
        assert_eq!(
            overlay_mount_options(&lowers, None),
            "lowerdir=/s/a\\:b:/s/c\\\\d"
        );
    }
}

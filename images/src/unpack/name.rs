//! Normalisation of entry names into a parent directory and a final
//! component, both relative to the layer root.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::UnpackError;

/// An entry name split for `*at` calls: `parent` is relative to the layer
/// root (empty for the root itself) and `file` is one component without a
/// slash. `file` is `None` for the layer root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryName {
    pub parent: PathBuf,
    pub file: Option<OsString>,
}

impl EntryName {
    /// Returns the normalised path relative to the layer root, `.` for the
    /// root.
    pub fn relative(&self) -> PathBuf {
        match &self.file {
            Some(file) => self.parent.join(file),
            None => PathBuf::from("."),
        }
    }
}

/// Normalises `raw` lexically: `.` and empty components are dropped and
/// `..` removes the previous component. Absolute names and names whose
/// `..` climbs above the root are rejected, as is a NUL byte.
pub(crate) fn normalise(raw: &[u8], display: &str) -> Result<EntryName, UnpackError> {
    if raw.first() == Some(&b'/') {
        return Err(UnpackError::rejected(display, "is an absolute path"));
    }
    if raw.contains(&0) {
        return Err(UnpackError::rejected(display, "contains a NUL byte"));
    }
    let mut components: Vec<&[u8]> = Vec::new();
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                if components.pop().is_none() {
                    return Err(UnpackError::rejected(
                        display,
                        "has a '..' component that climbs out of the layer root",
                    ));
                }
            }
            other => components.push(other),
        }
    }
    let file = components.pop().map(|c| OsStr::from_bytes(c).to_owned());
    let parent = components
        .iter()
        .map(|c| OsStr::from_bytes(c))
        .collect::<PathBuf>();
    Ok(EntryName { parent, file })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(raw: &str) -> (String, Option<String>) {
        let name = normalise(raw.as_bytes(), raw).unwrap();
        (
            name.parent.to_string_lossy().into_owned(),
            name.file.map(|f| f.to_string_lossy().into_owned()),
        )
    }

    #[test]
    fn normalise_plain_names() {
        assert_eq!(split("a"), (String::new(), Some("a".into())));
        assert_eq!(split("./a/b"), ("a".into(), Some("b".into())));
        assert_eq!(split("a/"), (String::new(), Some("a".into())));
        assert_eq!(split("a//b/./c"), ("a/b".into(), Some("c".into())));
        assert_eq!(split("a/../b"), (String::new(), Some("b".into())));
        assert_eq!(split("./"), (String::new(), None));
        assert_eq!(split("."), (String::new(), None));
    }

    #[test]
    fn normalise_rejects_escapes() {
        for raw in ["/etc/passwd", "../a", "a/../../b", "./..", "a/\0b"] {
            let err = normalise(raw.as_bytes(), raw).unwrap_err();
            assert!(matches!(err, UnpackError::Rejected { .. }), "{raw}: {err}");
        }
    }
}

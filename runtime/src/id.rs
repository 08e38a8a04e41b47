//! Container ids: the names that become directories under `--root` and
//! cgroup names, so they are checked before any of those is made.

use crate::{Error, Result};

/// Maximum id length in bytes: an id is a directory name under `--root`,
/// and Linux limits a file name to 255 bytes.
pub const MAX_ID_LEN: usize = 255;

/// Checks that `id` can name a container: 1 to 255 bytes of ASCII letters,
/// digits, `_`, `+`, `-` and `.`, and not `.` or `..` (runc's rule, with a
/// length limit added).
pub fn validate(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidId {
            id: id.into(),
            reason: "it is empty",
        });
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::InvalidId {
            id: format!("{}...", &id[..32]),
            reason: "it is longer than 255 bytes",
        });
    }
    if id == "." || id == ".." {
        return Err(Error::InvalidId {
            id: id.into(),
            reason: "it names a directory",
        });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.');
    if !id.chars().all(allowed) {
        return Err(Error::InvalidId {
            id: id.escape_default().to_string(),
            reason: "use only letters, digits, '_', '+', '-' and '.'",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_ids() {
        for id in ["a", "web-1", "k8s_pod.sandbox+0", &"x".repeat(255)] {
            assert!(validate(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn rejects_bad_ids() {
        let long = "x".repeat(256);
        for id in [
            "", ".", "..", "../x", "a/b", "/", "a b", "tab\t", "nul\0", "é", &long,
        ] {
            assert!(validate(id).is_err(), "{id:?}");
        }
    }

    #[test]
    fn error_names_the_escaped_id() {
        let message = validate("a\nb").unwrap_err().to_string();
        assert!(message.contains("a\\nb"), "{message}");
    }
}

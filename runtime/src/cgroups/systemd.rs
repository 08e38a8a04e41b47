//! The systemd form of `linux.cgroupsPath` (`slice:prefix:name`) used with
//! `--systemd-cgroup`.

use std::path::Path;

use super::CgroupError;

/// A parsed `slice:prefix:name` cgroups path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdPath {
    /// The parent slice, `system.slice` when empty.
    pub slice: String,
    pub prefix: String,
    pub name: String,
}

impl SystemdPath {
    /// Returns the transient scope unit the container runs in:
    /// `PREFIX-NAME.scope`.
    pub fn unit(&self) -> String {
        if self.prefix.is_empty() {
            format!("{}.scope", self.name)
        } else {
            format!("{}-{}.scope", self.prefix, self.name)
        }
    }
}

/// Parses `slice:prefix:name`. Without a path, the container gets
/// `system.slice:hull:ID`.
pub fn parse(path: Option<&str>, id: &str) -> Result<SystemdPath, CgroupError> {
    let invalid = |path: &str, reason: &str| CgroupError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let Some(path) = path.filter(|p| !p.is_empty()) else {
        return Ok(SystemdPath {
            slice: "system.slice".into(),
            prefix: "hull".into(),
            name: id.into(),
        });
    };
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(invalid(
            path,
            "with --systemd-cgroup it must be slice:prefix:name",
        ));
    };
    if !slice.is_empty() && !slice.ends_with(".slice") {
        return Err(invalid(path, "the slice must end in .slice"));
    }
    if slice.contains('/') || prefix.contains('/') || name.contains('/') {
        return Err(invalid(path, "slice, prefix and name must not contain '/'"));
    }
    if name.is_empty() {
        return Err(invalid(path, "the name must not be empty"));
    }
    Ok(SystemdPath {
        slice: if slice.is_empty() {
            "system.slice"
        } else {
            slice
        }
        .into(),
        prefix: prefix.into(),
        name: name.into(),
    })
}

/// Checks that the systemd cgroup driver can be used here.
pub fn check_available(path: &SystemdPath) -> Result<(), CgroupError> {
    if !Path::new("/run/systemd/system").exists() {
        return Err(CgroupError::Other {
            path: format!("{}/{}", path.slice, path.unit()),
            message: "--systemd-cgroup needs a running systemd, and this host has none \
                      (no /run/systemd/system): drop the flag to manage cgroups through cgroupfs"
                .into(),
        });
    }
    // TODO: create the scope as a transient unit over D-Bus
    // (StartTransientUnit) and manage it through systemd's properties.
    Err(CgroupError::Other {
        path: format!("{}/{}", path.slice, path.unit()),
        message: "the systemd cgroup driver is not implemented yet: drop --systemd-cgroup to manage cgroups through cgroupfs".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_parts() {
        let path = parse(Some("user.slice:podman:abc"), "id").unwrap();
        assert_eq!(path.slice, "user.slice");
        assert_eq!(path.unit(), "podman-abc.scope");
    }

    #[test]
    fn empty_slice_and_default() {
        assert_eq!(parse(Some(":p:n"), "id").unwrap().slice, "system.slice");
        let default = parse(None, "c1").unwrap();
        assert_eq!(default.unit(), "hull-c1.scope");
    }

    #[test]
    fn rejects_other_forms() {
        for path in [
            "/a/b",
            "a:b",
            "x:p:n",
            "a.slice:p:",
            "a.slice:p:n:x",
            "a.slice:p/q:n",
        ] {
            assert!(parse(Some(path), "id").is_err(), "{path}");
        }
    }
}

//! Sub-cgroups of a container's cgroup, where `exec --cgroup` places a
//! new process.
//!
//! Each `--cgroup` value is `PATH`, for every hierarchy, or
//! `CONTROLLER[,CONTROLLER...]:PATH`, for the named v1 controllers. `PATH`
//! is relative to the container's cgroup, and `/` is the container's cgroup
//! itself.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::{CgroupDir, CgroupError, CgroupMode, Manager};

/// Key of the sub-cgroup path that applies to every hierarchy.
const ALL: &str = "";

/// Parses `exec --cgroup` values into sub-cgroup paths keyed by controller,
/// with the key `""` for a path without controllers. A controller given
/// twice is an error.
pub fn parse_sub_cgroups(values: &[String]) -> Result<BTreeMap<String, String>, CgroupError> {
    let mut paths = BTreeMap::new();
    for value in values {
        let (controllers, path) = match value.split_once(':') {
            Some((controllers, path)) => (controllers.split(',').collect(), path),
            None => (vec![ALL], value.as_str()),
        };
        for controller in controllers {
            let previous = paths.insert(controller.to_string(), path.to_string());
            if previous.is_some() {
                let which = if controller.is_empty() {
                    "a path for every controller".to_string()
                } else {
                    format!("controller {controller:?}")
                };
                return Err(CgroupError::SubCgroup {
                    value: value.clone(),
                    reason: format!("{which} is given more than once"),
                });
            }
        }
    }
    Ok(paths)
}

/// Joins `sub` to `base` lexically, as a path below `base`. Returns `None`
/// when `..` leads above `base`.
fn join_below(base: &Path, sub: &str) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in Path::new(sub).components() {
        match component {
            Component::Normal(part) => parts.push(part),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(
        parts
            .iter()
            .fold(base.to_path_buf(), |dir, part| dir.join(part)),
    )
}

impl Manager {
    /// Returns a manager for the sub-cgroups `paths` (from
    /// [`parse_sub_cgroups`]) of this cgroup: each hierarchy takes the path
    /// of its controller, else the path for every controller, else stays at
    /// this cgroup. Fails on an unknown controller, a path above this
    /// cgroup, a sub-cgroup that does not exist, and a controller name on a
    /// cgroup v2 host. On a hybrid host the cgroup2 directory stays at this
    /// cgroup.
    pub fn sub_cgroup(&self, paths: &BTreeMap<String, String>) -> Result<Manager, CgroupError> {
        let invalid = |controller: &str, path: &str, reason: String| {
            let value = match controller {
                ALL => path.to_string(),
                _ => format!("{controller}:{path}"),
            };
            CgroupError::SubCgroup { value, reason }
        };
        for (controller, path) in paths {
            if controller.is_empty() {
                continue;
            }
            if self.mode == CgroupMode::Unified {
                return Err(invalid(
                    controller,
                    path,
                    "controller names apply to cgroup v1 only: give the path alone".into(),
                ));
            }
            if !self.v1.contains_key(controller) {
                let known: Vec<&str> = self.v1.keys().map(String::as_str).collect();
                return Err(invalid(
                    controller,
                    path,
                    format!(
                        "unknown controller {controller:?} (known: {})",
                        known.join(", ")
                    ),
                ));
            }
        }

        let place = |name: &str, dir: &CgroupDir| -> Result<CgroupDir, CgroupError> {
            let (key, path) = match paths.get(name) {
                Some(path) => (name, path),
                None => match paths.get(ALL) {
                    Some(path) => (ALL, path),
                    None => return Ok(dir.clone()),
                },
            };
            let sub = join_below(&dir.dir, path).ok_or_else(|| {
                invalid(
                    key,
                    path,
                    format!("{path} is not a sub cgroup path of {}", dir.dir.display()),
                )
            })?;
            if !sub.is_dir() {
                let procs = sub.join("cgroup.procs");
                return Err(invalid(
                    key,
                    path,
                    format!(
                        "sub-cgroup not found, so adding pid to {}: no such file or directory \
                         (create the sub-cgroup first)",
                        procs.display()
                    ),
                ));
            }
            Ok(CgroupDir {
                mount_point: dir.mount_point.clone(),
                dir: sub,
            })
        };

        let mut v1 = BTreeMap::new();
        for (name, dir) in &self.v1 {
            v1.insert(name.clone(), place(name, dir)?);
        }
        let unified = match (&self.unified, self.mode) {
            (Some(dir), CgroupMode::Unified) => Some(place(ALL, dir)?),
            (other, _) => other.clone(),
        };
        Ok(Manager {
            path: self.path.clone(),
            mode: self.mode,
            v1,
            unified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keys_paths_by_controller() {
        let values = [
            "memory:submem".to_string(),
            "cpu,cpuacct:subcpu".to_string(),
        ];
        let paths = parse_sub_cgroups(&values).unwrap();
        assert_eq!(paths.len(), 3);
        assert_eq!(paths["memory"], "submem");
        assert_eq!(paths["cpu"], "subcpu");
        assert_eq!(paths["cpuacct"], "subcpu");

        let all = parse_sub_cgroups(&["sub".to_string()]).unwrap();
        assert_eq!(all[""], "sub");
    }

    #[test]
    fn parse_rejects_repeated_controller() {
        let values = ["memory:a".to_string(), "memory:b".to_string()];
        let error = parse_sub_cgroups(&values).unwrap_err().to_string();
        assert!(error.contains("\"memory\""), "{error}");
        assert!(parse_sub_cgroups(&["a".into(), "b".into()]).is_err());
    }

    #[test]
    fn join_stays_below_base() {
        let base = Path::new("/sys/fs/cgroup/cpu/ctr");
        assert_eq!(join_below(base, "/"), Some(base.to_path_buf()));
        assert_eq!(join_below(base, "a/b"), Some(base.join("a/b")));
        assert_eq!(join_below(base, "/a/../b"), Some(base.join("b")));
        assert_eq!(join_below(base, ".."), None);
        assert_eq!(join_below(base, "a/../../x"), None);
    }
}

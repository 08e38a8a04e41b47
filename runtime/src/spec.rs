//! Loading and checking a bundle's `config.json` before anything is created.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::Value;

use crate::{Error, Result};

/// Name of the configuration file in a bundle.
pub const CONFIG_FILE: &str = "config.json";

/// Major and highest minor version of the runtime spec this runtime reads.
const SUPPORTED_MAJOR: u64 = 1;
const SUPPORTED_MAX_MINOR: u64 = 2;

/// A bundle's configuration, checked, with the rootfs made absolute.
#[derive(Debug, Clone)]
pub struct Config {
    pub spec: Spec,
    /// Absolute path of the bundle directory.
    pub bundle: PathBuf,
    /// Absolute path of the rootfs directory.
    pub rootfs: PathBuf,
}

/// Reads `config.json` from `bundle` and checks what the runtime needs
/// before it creates anything.
pub fn load(bundle: &Path) -> Result<Config> {
    let bundle = fs::canonicalize(bundle).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Spec(format!(
            "bundle {} does not exist: pass the bundle directory with --bundle",
            bundle.display()
        )),
        _ => Error::io(format!("bundle {}", bundle.display()), e),
    })?;
    let path = bundle.join(CONFIG_FILE);
    let text = fs::read_to_string(&path).map_err(|e| {
        if path.is_dir() {
            Error::Spec(format!(
                "{} is a directory: it must be the bundle's JSON configuration file",
                path.display()
            ))
        } else if e.kind() == std::io::ErrorKind::NotFound {
            Error::Spec(format!(
                "JSON specification file {} not found: run `hull spec` to write one",
                path.display()
            ))
        } else {
            Error::io(format!("read {}", path.display()), e)
        }
    })?;
    let spec = parse(&text)
        .map_err(|message| Error::Spec(format!("invalid {}: {message}", path.display())))?;
    check(&spec)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Spec("root.path is missing from config.json".into()))?;
    let rootfs = bundle.join(root.path());
    let rootfs = match fs::metadata(&rootfs) {
        Ok(meta) if meta.is_dir() => fs::canonicalize(&rootfs)
            .map_err(|e| Error::io(format!("rootfs {}", rootfs.display()), e))?,
        Ok(_) => {
            return Err(Error::Spec(format!(
                "rootfs {} is not a directory",
                rootfs.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Spec(format!(
                "rootfs {} does not exist: create it or point root.path in config.json at it",
                rootfs.display()
            )))
        }
        Err(e) => return Err(Error::io(format!("rootfs {}", rootfs.display()), e)),
    };
    Ok(Config {
        spec,
        bundle,
        rootfs,
    })
}

/// Parses the text of a `config.json`. Capability names are checked first,
/// because the typed parser reports an unknown one with its full list of
/// variants rather than naming the field.
pub fn parse(text: &str) -> std::result::Result<Spec, String> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    check_capability_names(&value)?;
    drop_empty_namespace_paths(&mut value);
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// Removes `"path": ""` from `linux.namespaces` entries. runc treats an
/// empty path as no path (a new namespace), and configs written for it,
/// such as ones made with jq, use it that way.
fn drop_empty_namespace_paths(value: &mut Value) {
    let Some(list) = value
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for namespace in list.iter_mut().filter_map(Value::as_object_mut) {
        if namespace.get("path").and_then(Value::as_str) == Some("") {
            namespace.remove("path");
        }
    }
}

fn check_capability_names(value: &Value) -> std::result::Result<(), String> {
    let Some(sets) = value
        .pointer("/process/capabilities")
        .and_then(Value::as_object)
    else {
        return Ok(());
    };
    for (set, names) in sets {
        for name in names.as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if name.parse::<caps::Capability>().is_err() {
                return Err(format!(
                    "process.capabilities.{set}: unknown capability \"{name}\" (names look like CAP_NET_ADMIN)"
                ));
            }
        }
    }
    Ok(())
}

/// Checks the fields that the typed parser accepts but the runtime cannot run.
pub fn check(spec: &Spec) -> Result<()> {
    check_version(spec.version())?;
    if let Some(process) = spec.process() {
        if process.args().as_ref().is_none_or(|args| args.is_empty()) {
            return Err(Error::Spec("process.args must not be empty".into()));
        }
        if !process.cwd().is_absolute() {
            return Err(Error::Spec(format!(
                "process.cwd {:?} must be an absolute path",
                process.cwd()
            )));
        }
        check_user(process.user())?;
        if let Some(scheduler) = process.scheduler() {
            crate::process::attributes::check_scheduler(scheduler)?;
        }
        if let Some(io) = process.io_priority() {
            if !(0..=7).contains(&io.priority()) {
                return Err(Error::Spec(format!(
                    "process.ioPriority: priority {} must be 0 to 7",
                    io.priority()
                )));
            }
        }
    }
    if let Some(linux) = spec.linux() {
        if let Some(personality) = linux.personality() {
            crate::process::attributes::check_personality(personality)?;
        }
        if linux.intel_rdt().is_some() {
            // TODO: resctrl groups for Intel RDT, untested because this
            // hardware has none to test them on.
            let why = if std::path::Path::new("/sys/fs/resctrl/info").exists() {
                "hull does not manage resctrl groups yet"
            } else {
                "resctrl is not mounted on /sys/fs/resctrl (no RDT hardware or kernel support)"
            };
            return Err(Error::Spec(format!(
                "linux.intelRdt is not supported: {why}"
            )));
        }
    }
    for hook in all_hooks(spec) {
        if !hook.path().is_absolute() {
            return Err(Error::Spec(format!(
                "hook path {:?} must be an absolute path",
                hook.path()
            )));
        }
    }
    Ok(())
}

/// Highest uid or gid a process may get: the kernel reads (uid_t)-1 as
/// "unchanged" in setresuid(2), so a larger value could leave the process
/// running as the runtime's root.
pub const MAX_ID: u32 = i32::MAX as u32;

/// Checks that the uid, gid and additional gids of a process are in range.
pub fn check_user(user: &oci_spec::runtime::User) -> Result<()> {
    let ids = [("uid", user.uid()), ("gid", user.gid())]
        .into_iter()
        .chain(
            user.additional_gids()
                .iter()
                .flatten()
                .map(|g| ("additionalGids", *g)),
        );
    for (field, id) in ids {
        if id > MAX_ID {
            return Err(Error::Spec(format!(
                "process.user.{field} {id} is out of range: uids and gids must be in range 0-{MAX_ID}"
            )));
        }
    }
    Ok(())
}

/// Returns every hook of the spec, of all kinds.
pub fn all_hooks(spec: &Spec) -> impl Iterator<Item = &oci_spec::runtime::Hook> {
    let hooks = spec.hooks().as_ref();
    [
        hooks.and_then(|h| h.prestart().as_ref()),
        hooks.and_then(|h| h.create_runtime().as_ref()),
        hooks.and_then(|h| h.create_container().as_ref()),
        hooks.and_then(|h| h.start_container().as_ref()),
        hooks.and_then(|h| h.poststart().as_ref()),
        hooks.and_then(|h| h.poststop().as_ref()),
    ]
    .into_iter()
    .flatten()
    .flatten()
}

fn check_version(version: &str) -> Result<()> {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.').map(str::parse::<u64>);
    let (major, minor) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(_)), None) => (major, minor),
        _ => {
            return Err(Error::Spec(format!(
                "invalid ociVersion \"{version}\": expected a version such as 1.0.2"
            )))
        }
    };
    if major != SUPPORTED_MAJOR || minor > SUPPORTED_MAX_MINOR {
        return Err(Error::Spec(format!(
            "unsupported ociVersion \"{version}\": hull runs 1.0.0 to 1.{SUPPORTED_MAX_MINOR}.x"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_check_accepts_1x() {
        for version in ["1.0.0", "1.0.2-dev", "1.1.0", "1.2.1", "1.2.0+dev"] {
            assert!(check_version(version).is_ok(), "{version}");
        }
    }

    #[test]
    fn version_check_rejects_others() {
        for version in [
            "", "1", "1.0", "0.1.0", "2.0.0", "1.3.0", "a.b.c", "1.0.0.0",
        ] {
            let message = check_version(version).unwrap_err().to_string();
            assert!(message.contains(&format!("\"{version}\"")), "{message}");
        }
    }

    #[test]
    fn unknown_capability_is_named() {
        let text = r#"{"ociVersion":"1.0.2","process":{"cwd":"/","args":["sh"],
            "capabilities":{"bounding":["CAP_CHOWN","CAP_FLY"]}}}"#;
        let message = parse(text).unwrap_err();
        assert!(message.contains("\"CAP_FLY\""), "{message}");
        assert!(message.contains("bounding"), "{message}");
    }

    #[test]
    fn user_ids_out_of_range_are_rejected() {
        for (uid, gid) in [(4294967295u32, 0u32), (0, 4294967295), (3000000000, 0)] {
            let user: oci_spec::runtime::User =
                serde_json::from_value(serde_json::json!({"uid": uid, "gid": gid})).unwrap();
            let message = check_user(&user).unwrap_err().to_string();
            assert!(message.contains("0-2147483647"), "{message}");
        }
        let user: oci_spec::runtime::User =
            serde_json::from_value(serde_json::json!({"uid": 2147483647, "gid": 0})).unwrap();
        assert!(check_user(&user).is_ok());
    }

    #[test]
    fn empty_namespace_path_means_new_namespace() {
        let text = r#"{"ociVersion":"1.0.2","linux":{"namespaces":[
            {"type":"mount","path":""},{"type":"uts","path":"/proc/1/ns/uts"}]}}"#;
        let spec = parse(text).unwrap();
        let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert_eq!(namespaces[0].path(), &None);
        assert_eq!(
            namespaces[1].path().as_deref(),
            Some(std::path::Path::new("/proc/1/ns/uts"))
        );
    }

    #[test]
    fn malformed_json_is_reported() {
        assert!(parse("{\"ociVersion\": ").is_err());
    }
}

//! Runtime options of a container: which runtime binary to run and with
//! which global flags. They come from `CreateTaskRequest.options` and are
//! saved in the bundle as `options.json`, so the `delete` action finds them
//! after the shim has died.

use std::path::{Path, PathBuf};

use hull_proto::containerd::runc::v1::Options as RuncOptions;
use hull_proto::events::from_any;
use serde::{Deserialize, Serialize};

/// File in the bundle that stores the options.
pub const OPTIONS_FILE: &str = "options.json";

/// Runtime binary used when the options name none.
pub const DEFAULT_RUNTIME: &str = "hull";

/// `runtimeoptions.v1.Options`, which `ctr run --runtime-config-path` sends
/// to runtimes other than `io.containerd.runc.v2`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigPathOptions {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(string, tag = "2")]
    pub config_path: String,
}

impl prost::Name for ConfigPathOptions {
    const NAME: &'static str = "Options";
    const PACKAGE: &'static str = "runtimeoptions.v1";
}

/// Invalid or unreadable options.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("invalid runtime options of type {type_url}: {source}")]
    Decode {
        type_url: String,
        source: prost::DecodeError,
    },
    #[error("unsupported runtime options type {0}")]
    UnsupportedType(String),
    #[error("failed to read runtime config {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid line {line:?} in runtime config {path}: expected key = value")]
    InvalidConfig { path: PathBuf, line: String },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The options the shim uses, with runc's option names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ShimOptions {
    pub binary_name: String,
    pub root: String,
    pub systemd_cgroup: bool,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
    pub shim_cgroup: String,
    pub criu_image_path: String,
    pub criu_work_path: String,
}

impl ShimOptions {
    /// Reads the options from an `Any` holding `containerd.runc.v1.Options`
    /// or `runtimeoptions.v1.Options` (a config file path). No options give
    /// the defaults.
    pub fn from_any(any: Option<&prost_types::Any>) -> Result<ShimOptions, OptionsError> {
        let Some(any) = any.filter(|any| !any.type_url.is_empty()) else {
            return Ok(ShimOptions::default());
        };
        let decode_error = |source| OptionsError::Decode {
            type_url: any.type_url.clone(),
            source,
        };
        if let Some(options) = from_any::<RuncOptions>(any) {
            return Ok(ShimOptions::from(options.map_err(decode_error)?));
        }
        if let Some(options) = from_any::<ConfigPathOptions>(any) {
            let options = options.map_err(decode_error)?;
            if options.config_path.is_empty() {
                return Ok(ShimOptions::default());
            }
            return ShimOptions::from_config_file(Path::new(&options.config_path));
        }
        Err(OptionsError::UnsupportedType(any.type_url.clone()))
    }

    /// Reads a config file of `Key = value` lines with runc's option names,
    /// the subset of TOML that runtime config files use.
    pub fn from_config_file(path: &Path) -> Result<ShimOptions, OptionsError> {
        let text = std::fs::read_to_string(path).map_err(|source| OptionsError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let mut options = ShimOptions::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            let invalid = || OptionsError::InvalidConfig {
                path: path.to_path_buf(),
                line: line.to_owned(),
            };
            let (key, value) = line.split_once('=').ok_or_else(invalid)?;
            let value = value.trim();
            let text = value.trim_matches('"').to_owned();
            let flag = value == "true";
            match key.trim() {
                "BinaryName" => options.binary_name = text,
                "Root" => options.root = text,
                "SystemdCgroup" => options.systemd_cgroup = flag,
                "NoPivotRoot" => options.no_pivot_root = flag,
                "NoNewKeyring" => options.no_new_keyring = flag,
                "ShimCgroup" => options.shim_cgroup = text,
                "CriuImagePath" => options.criu_image_path = text,
                "CriuWorkPath" => options.criu_work_path = text,
                _ => tracing::warn!(key, path = %path.display(), "ignoring unknown runtime option"),
            }
        }
        Ok(options)
    }

    /// Saves the options in `bundle`.
    pub fn save(&self, bundle: &Path) -> Result<(), OptionsError> {
        let path = bundle.join(OPTIONS_FILE);
        let json = serde_json::to_vec(self).expect("options serialize to JSON");
        std::fs::write(&path, json).map_err(|source| OptionsError::Write { path, source })
    }

    /// Loads the options saved in `bundle`, or the defaults if there are none.
    pub fn load(bundle: &Path) -> Result<ShimOptions, OptionsError> {
        let path = bundle.join(OPTIONS_FILE);
        match std::fs::read(&path) {
            Ok(data) => {
                serde_json::from_slice(&data).map_err(|source| OptionsError::Parse { path, source })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(ShimOptions::default())
            }
            Err(source) => Err(OptionsError::ReadConfig { path, source }),
        }
    }

    /// Returns the runtime binary: `BinaryName`, or else `hull` next to the
    /// shim's executable when it exists there, or else `hull` from `PATH`.
    pub fn runtime_binary(&self) -> PathBuf {
        if !self.binary_name.is_empty() {
            return PathBuf::from(&self.binary_name);
        }
        let beside_shim = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(DEFAULT_RUNTIME)));
        match beside_shim {
            Some(path) if path.is_file() => path,
            _ => PathBuf::from(DEFAULT_RUNTIME),
        }
    }

    /// Returns the runtime's state directory for `namespace`: `Root` or
    /// `/run/containerd/<binary name>`, with the namespace appended as the
    /// runc shim does.
    pub fn runtime_root(&self, namespace: &str) -> PathBuf {
        let base = if self.root.is_empty() {
            let binary = self.runtime_binary();
            let name = binary
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_else(|| DEFAULT_RUNTIME.to_owned());
            Path::new("/run/containerd").join(name)
        } else {
            PathBuf::from(&self.root)
        };
        base.join(namespace)
    }
}

impl From<RuncOptions> for ShimOptions {
    fn from(options: RuncOptions) -> ShimOptions {
        ShimOptions {
            binary_name: options.binary_name,
            root: options.root,
            systemd_cgroup: options.systemd_cgroup,
            no_pivot_root: options.no_pivot_root,
            no_new_keyring: options.no_new_keyring,
            shim_cgroup: options.shim_cgroup,
            criu_image_path: options.criu_image_path,
            criu_work_path: options.criu_work_path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_proto::events::to_any;

    #[test]
    fn runc_options_decode() {
        let any = to_any(&RuncOptions {
            binary_name: "runc".into(),
            systemd_cgroup: true,
            ..Default::default()
        });
        let options = ShimOptions::from_any(Some(&any)).unwrap();
        assert_eq!(options.binary_name, "runc");
        assert!(options.systemd_cgroup);
        assert_eq!(
            options.runtime_root("ns"),
            PathBuf::from("/run/containerd/runc/ns")
        );
    }

    #[test]
    fn config_path_options_read_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("runtime.toml");
        std::fs::write(
            &config,
            "# runc\nBinaryName = \"crun\"\nNoPivotRoot = true\n",
        )
        .unwrap();
        let any = to_any(&ConfigPathOptions {
            type_url: String::new(),
            config_path: config.display().to_string(),
        });
        let options = ShimOptions::from_any(Some(&any)).unwrap();
        assert_eq!(options.binary_name, "crun");
        assert!(options.no_pivot_root);
    }

    #[test]
    fn options_round_trip_through_the_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let options = ShimOptions {
            binary_name: "runc".into(),
            root: "/tmp/r".into(),
            ..Default::default()
        };
        options.save(dir.path()).unwrap();
        assert_eq!(ShimOptions::load(dir.path()).unwrap(), options);
    }

    #[test]
    fn unknown_options_type_is_rejected() {
        let any = prost_types::Any {
            type_url: "example.Unknown".into(),
            value: vec![],
        };
        assert!(matches!(
            ShimOptions::from_any(Some(&any)),
            Err(OptionsError::UnsupportedType(_))
        ));
    }
}

//! Registry credentials from docker's `config.json`: the `auths` map
//! (base64 `auth` or `username`/`password`), and credential helpers named
//! by `credHelpers` and `credsStore` (`docker-credential-<name> get`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value};

use super::credential_helper::{helper_erase, helper_get, helper_installed, helper_store};
use super::error::RegistryError;

/// The key under which docker's config.json stores docker.io credentials.
pub const DOCKER_IO_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token used as password) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Docker's config.json location: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn default_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker/config.json")
}

/// Returns the config.json key for `registry`: docker.io's historical index
/// URL, or the registry's `host[:port]`.
pub fn config_key(registry: &str) -> String {
    if normalize_key(registry) == "docker.io" {
        DOCKER_IO_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// Reduces a config.json key or registry name to `host[:port]`, the way
/// docker compares them: the scheme and any path are dropped and the
/// docker.io hosts become `docker.io`.
fn normalize_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

/// A docker config.json, keeping every field this code does not use so
/// that writing it back loses nothing.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    document: Map<String, Value>,
}

impl DockerConfig {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let document = match fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(credentials_error(path, "the file is not a JSON object")),
                Err(e) => return Err(credentials_error(path, &format!("invalid JSON: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => {
                return Err(RegistryError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            document,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks up the credentials for `registry`: a `credHelpers` entry first,
    /// then an `auths` entry, then the `credsStore` helper. A helper whose
    /// program is not installed is skipped.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(helper) = self.helper_for(registry) {
            if let Some(credentials) = helper_get(&helper, registry)? {
                return Ok(Some(credentials));
            }
        }
        if let Some((_, entry)) = self.auth_entry(registry) {
            if let Some(credentials) = decode_entry(&self.path, entry)? {
                return Ok(Some(credentials));
            }
        }
        if let Some(store) = self.string_field("credsStore") {
            if self.helper_for(registry).as_deref() != Some(store.as_str()) {
                return helper_get(&store, registry);
            }
        }
        Ok(None)
    }

    /// Saves credentials for `registry`: through its credential helper when
    /// one is configured and installed, else base64-encoded in `auths`.
    /// Writes the file atomically with mode 0600 and keeps other entries.
    pub fn store(
        &mut self,
        registry: &str,
        credentials: &Credentials,
    ) -> Result<(), RegistryError> {
        let helper = self
            .helper_for(registry)
            .or_else(|| self.string_field("credsStore"));
        if let Some(helper) = helper.filter(|helper| helper_installed(helper)) {
            helper_store(&helper, registry, credentials)?;
            // Docker leaves an empty entry in `auths` so that the registry
            // shows up as logged in.
            self.auths_mut()
                .insert(config_key(registry), Value::Object(Map::new()));
            return self.save();
        }
        let pair = format!("{}:{}", credentials.username, credentials.password);
        let auth = base64::engine::general_purpose::STANDARD.encode(pair);
        let key = self
            .auth_entry(registry)
            .map(|(key, _)| key.to_string())
            .unwrap_or_else(|| config_key(registry));
        let mut entry = Map::new();
        entry.insert("auth".into(), Value::String(auth));
        self.auths_mut().insert(key, Value::Object(entry));
        self.save()
    }

    /// Removes the credentials for `registry` from `auths` and from its
    /// credential helper. Returns false when there was nothing to remove.
    pub fn erase(&mut self, registry: &str) -> Result<bool, RegistryError> {
        let mut removed = false;
        let helper = self
            .helper_for(registry)
            .or_else(|| self.string_field("credsStore"));
        if let Some(helper) = helper.filter(|helper| helper_installed(helper)) {
            removed |= helper_erase(&helper, registry)?;
        }
        let keys: Vec<String> = self
            .document
            .get("auths")
            .and_then(Value::as_object)
            .map(|auths| {
                auths
                    .keys()
                    .filter(|key| normalize_key(key) == normalize_key(registry))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for key in &keys {
            self.auths_mut().remove(key);
            removed = true;
        }
        if !keys.is_empty() {
            self.save()?;
        }
        Ok(removed)
    }

    fn string_field(&self, name: &str) -> Option<String> {
        self.document
            .get(name)
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    }

    fn helper_for(&self, registry: &str) -> Option<String> {
        let helpers = self.document.get("credHelpers")?.as_object()?;
        helpers
            .iter()
            .find(|(key, _)| normalize_key(key) == normalize_key(registry))
            .and_then(|(_, helper)| helper.as_str())
            .filter(|helper| !helper.is_empty())
            .map(str::to_string)
    }

    fn auth_entry(&self, registry: &str) -> Option<(&str, &Value)> {
        let auths = self.document.get("auths")?.as_object()?;
        let expected = normalize_key(registry);
        auths
            .iter()
            .find(|(key, _)| normalize_key(key) == expected)
            .map(|(key, value)| (key.as_str(), value))
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let auths = self
            .document
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        auths.as_object_mut().expect("auths is an object")
    }

    /// Writes the document to a temporary file next to `path` (mode 0600),
    /// syncs it and renames it over `path`.
    fn save(&self) -> Result<(), RegistryError> {
        let io_error = |source| RegistryError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(io_error)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_error)?;
        }
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.json".into());
        let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut bytes = serde_json::to_vec_pretty(&self.document).expect("a JSON map serializes");
        bytes.push(b'\n');
        let write = || -> std::io::Result<()> {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)?;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temp, &self.path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&temp);
            io_error(e)
        })
    }
}

fn credentials_error(path: &Path, reason: &str) -> RegistryError {
    RegistryError::Credentials {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads an `auths` entry: `auth` (base64 of `user:password`) wins over
/// `username`/`password`. An empty entry, as left by a credential helper,
/// gives `None`.
fn decode_entry(path: &Path, entry: &Value) -> Result<Option<Credentials>, RegistryError> {
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| credentials_error(path, &format!("invalid base64 in auth: {e}")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| credentials_error(path, "auth is not UTF-8 after base64 decoding"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| credentials_error(path, "auth does not decode to user:password"))?;
        return Ok(Some(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    let field = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default();
    if !field("username").is_empty() {
        return Ok(Some(Credentials {
            username: field("username").to_string(),
            password: field("password").to_string(),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, json: &str) -> PathBuf {
        let path = dir.join("config.json");
        fs::write(&path, json).unwrap();
        path
    }

    fn user(name: &str, password: &str) -> Credentials {
        Credentials {
            username: name.into(),
            password: password.into(),
        }
    }

    #[test]
    fn config_reads_base64_auth() {
        let dir = tempfile::tempdir().unwrap();
        // "alice:s3cr:et" in base64; the password keeps its colon.
        let path = write_config(
            dir.path(),
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6czNjcjpldA=="}}}"#,
        );
        let config = DockerConfig::load(&path).unwrap();
        assert_eq!(
            config.get("127.0.0.1:5000").unwrap(),
            Some(user("alice", "s3cr:et"))
        );
        assert_eq!(config.get("127.0.0.1:5001").unwrap(), None);
    }

    #[test]
    fn config_reads_username_password() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            r#"{"auths":{"https://registry.lan:5000/v2/":{"username":"bob","password":"pw"}}}"#,
        );
        let config = DockerConfig::load(&path).unwrap();
        assert_eq!(
            config.get("registry.lan:5000").unwrap(),
            Some(user("bob", "pw"))
        );
    }

    #[test]
    fn config_docker_io_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}"#,
        );
        let config = DockerConfig::load(&path).unwrap();
        assert_eq!(config.get("docker.io").unwrap(), Some(user("u", "p")));
        assert_eq!(
            config.get("registry-1.docker.io").unwrap(),
            Some(user("u", "p"))
        );
        assert_eq!(config_key("docker.io"), DOCKER_IO_KEY);
        assert_eq!(config_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn config_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let config = DockerConfig::load(&dir.path().join("none.json")).unwrap();
        assert_eq!(config.get("docker.io").unwrap(), None);
    }

    #[test]
    fn config_invalid_json_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "{not json");
        let error = DockerConfig::load(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
    }

    #[test]
    fn config_missing_helper_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            r#"{"credsStore":"hull-test-absent","credHelpers":{"r.lan":"hull-test-absent"},
                "auths":{"r.lan":{"auth":"dTpw"}}}"#,
        );
        let config = DockerConfig::load(&path).unwrap();
        assert_eq!(config.get("r.lan").unwrap(), Some(user("u", "p")));
        assert_eq!(config.get("other.lan").unwrap(), None);
    }

    #[test]
    fn config_store_keeps_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            r#"{"auths":{"other.lan":{"auth":"dTpw"}},"psFormat":"table {{.ID}}"}"#,
        );
        let mut config = DockerConfig::load(&path).unwrap();
        config
            .store("127.0.0.1:5000", &user("alice", "pw"))
            .unwrap();
        config.store("docker.io", &user("d", "q")).unwrap();

        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reread = DockerConfig::load(&path).unwrap();
        assert_eq!(
            reread.get("127.0.0.1:5000").unwrap(),
            Some(user("alice", "pw"))
        );
        assert_eq!(reread.get("other.lan").unwrap(), Some(user("u", "p")));
        assert_eq!(reread.get("docker.io").unwrap(), Some(user("d", "q")));
        let raw: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw["psFormat"], "table {{.ID}}");
        assert!(raw["auths"][DOCKER_IO_KEY].is_object());
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
    }

    #[test]
    fn config_store_creates_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let mut config = DockerConfig::load(&path).unwrap();
        config.store("r.lan", &user("a", "b")).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            DockerConfig::load(&path).unwrap().get("r.lan").unwrap(),
            Some(user("a", "b"))
        );
    }

    #[test]
    fn config_erase_removes_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            r#"{"auths":{"http://r.lan":{"auth":"dTpw"},"other.lan":{"auth":"dTpw"}}}"#,
        );
        let mut config = DockerConfig::load(&path).unwrap();
        assert!(config.erase("r.lan").unwrap());
        assert!(!config.erase("r.lan").unwrap());
        let reread = DockerConfig::load(&path).unwrap();
        assert_eq!(reread.get("r.lan").unwrap(), None);
        assert_eq!(reread.get("other.lan").unwrap(), Some(user("u", "p")));
    }

    #[test]
    fn default_path_uses_docker_config() {
        // Only reads the environment: DOCKER_CONFIG is not set by the test
        // runner, so the home directory form applies.
        if std::env::var_os("DOCKER_CONFIG").is_none() {
            assert!(default_path().ends_with(".docker/config.json"));
        }
    }
}

//! Basic auth against docker-registry with an htpasswd user: credentials
//! from a docker config.json, wrong passwords, login and logout.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use hull_images::registry::{Credentials, DockerConfig, RegistryConfig, RegistryError};
use hull_integration::registry::Registry;
use hull_integration::{require_root, require_tools};

use crate::{block_on, client_with, fetch_all, manifest, sha256, Pushed};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pass";

/// Writes a docker config.json with one `auths` entry for `host`.
pub fn config_file(dir: &Path, host: &str, user: &str, password: &str) -> PathBuf {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let json = serde_json::json!({"auths": {host: {"auth": auth}}});
    let path = dir.join("docker-config.json");
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    path
}

fn pushed_with_user() -> Pushed {
    let creds = format!("{USER}:{PASSWORD}");
    Pushed::start_in(
        Registry::start_with_user(USER, PASSWORD),
        &["--dest-creds", &creds],
    )
}

#[test]
fn basic_auth_from_config_file() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci", "htpasswd");
    let pushed = pushed_with_user();
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), &pushed.registry.host(), USER, PASSWORD);
    let (client, _dir) = client_with(RegistryConfig::default(), Some(file));
    let image = pushed.image();

    block_on(async {
        let (_, manifest) = manifest(&client, &image).await;
        let layer = &manifest.layers()[0];
        let data = fetch_all(&client, &image, layer).await;
        assert_eq!(sha256(&data), layer.digest().to_string());
    });
}

#[test]
fn basic_auth_wrong_password_error() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci", "htpasswd");
    let pushed = pushed_with_user();
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(dir.path(), &pushed.registry.host(), USER, "wrong");
    let (client, _dir) = client_with(RegistryConfig::default(), Some(file));

    let error = block_on(client.resolve(&pushed.image())).unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&pushed.registry.host()), "{message}");
    assert!(message.contains("test/busybox"), "{message}");
    assert!(
        message.contains("check the user name and password, or run hullctl login"),
        "{message}"
    );
}

#[test]
fn basic_auth_missing_credentials_error() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci", "htpasswd");
    let pushed = pushed_with_user();
    let (client, _dir) = client_with(RegistryConfig::default(), None);

    let error = block_on(client.resolve(&pushed.image())).unwrap_err();
    assert!(
        matches!(error, RegistryError::Unauthorized { .. }),
        "{error:?}"
    );
}

#[test]
fn login_checks_then_stores() {
    require_root!();
    require_tools!("docker-registry", "htpasswd");
    let registry = Registry::start_with_user(USER, PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker/config.json");
    let (client, _dir) = client_with(RegistryConfig::default(), Some(file.clone()));
    let host = registry.host();

    block_on(async {
        let error = client.login(&host, USER, "wrong").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::LoginFailed { .. }),
            "{error:?}"
        );
        assert!(error
            .to_string()
            .contains("check the user name and password"));
        assert!(!file.exists(), "a failed login wrote {}", file.display());

        client.login(&host, USER, PASSWORD).await.unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let stored = DockerConfig::load(&file).unwrap().get(&host).unwrap();
        assert_eq!(
            stored,
            Some(Credentials {
                username: USER.into(),
                password: PASSWORD.into(),
            })
        );

        assert!(client.logout(&host).await.unwrap());
        assert_eq!(DockerConfig::load(&file).unwrap().get(&host).unwrap(), None);
        assert!(!client.logout(&host).await.unwrap());
    });
}

/// A credential helper that returns fixed credentials for `helper.lan`,
/// reports other servers as not found, and records `store` and `erase`
/// input in its directory.
const FAKE_HELPER: &str = r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
get)
    read -r server
    if [ "$server" = helper.lan ]; then
        echo '{"ServerURL":"helper.lan","Username":"carol","Secret":"from-helper"}'
    else
        echo 'credentials not found in native keychain'
        exit 1
    fi ;;
store) cat > "$dir/stored.json" ;;
erase) cat > "$dir/erased" ;;
esac
"#;

#[test]
fn credential_helper_get_store_erase() {
    // The helper must be found in PATH, so the checks run in a child test
    // process with the helper's directory in front of PATH.
    let Some(helper_dir) = std::env::var_os("HULL_TEST_HELPER_DIR") else {
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-hulltest");
        std::fs::write(&helper, FAKE_HELPER).unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "auth::credential_helper_get_store_erase",
                "--exact",
                "--nocapture",
            ])
            .env("PATH", path)
            .env("HULL_TEST_HELPER_DIR", dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "child test failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("1 passed"),
            "the child ran no test:\n{stdout}"
        );
        return;
    };
    let helper_dir = PathBuf::from(helper_dir);
    let file = helper_dir.join("config.json");
    std::fs::write(
        &file,
        r#"{"credHelpers":{"helper.lan":"hulltest"},"auths":{"plain.lan":{"auth":"dTpw"}}}"#,
    )
    .unwrap();
    let mut config = DockerConfig::load(&file).unwrap();

    let carol = Credentials {
        username: "carol".into(),
        password: "from-helper".into(),
    };
    assert_eq!(config.get("helper.lan").unwrap(), Some(carol));
    assert_eq!(config.get("other.lan").unwrap(), None);
    assert_eq!(
        config.get("plain.lan").unwrap().map(|found| found.username),
        Some("u".to_string())
    );

    let dave = Credentials {
        username: "dave".into(),
        password: "pw".into(),
    };
    config.store("helper.lan", &dave).unwrap();
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(helper_dir.join("stored.json")).unwrap()).unwrap();
    assert_eq!(stored["ServerURL"], "helper.lan");
    assert_eq!(stored["Username"], "dave");
    assert_eq!(stored["Secret"], "pw");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(written["auths"]["helper.lan"], serde_json::json!({}));
    assert!(written["auths"]["plain.lan"]["auth"].is_string());

    assert!(config.erase("helper.lan").unwrap());
    let erased = std::fs::read_to_string(helper_dir.join("erased")).unwrap();
    assert_eq!(erased, "helper.lan");
}

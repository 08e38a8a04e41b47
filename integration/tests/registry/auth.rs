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

//! A client for the OCI distribution spec: resolves references, fetches
//! and pushes manifests and blobs, mounts blobs across repositories and
//! lists referrers, with basic and bearer authentication from docker's
//! config.json.
//!
//! Requests go over HTTPS, except to loopback hosts and to the hosts listed
//! in [`RegistryConfig::insecure`], which get plain HTTP.

pub mod auth;
mod blob;
mod credential_helper;
pub mod credentials;
pub mod error;
mod manifest;
pub mod platform;
mod referrers;
mod request;
pub mod transport;
mod upload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_spec::image::Descriptor;

pub use auth::Challenge;
pub use blob::BlobStream;
pub use credentials::{Credentials, DockerConfig};
pub use error::{ApiError, ApiErrors, RegistryError};
pub use manifest::{
    DOCKER_MANIFEST_LIST_V2, DOCKER_MANIFEST_V2, MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST,
};

use crate::reference::{DEFAULT_REGISTRY, DEFAULT_REGISTRY_HOST};
use crate::Reference;

/// Settings of a [`RegistryClient`].
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Registries (`host[:port]`, or a host for all its ports) reached over
    /// plain HTTP. Loopback hosts always are.
    pub insecure: Vec<String>,
    /// Docker config.json to read credentials from and to store logins in;
    /// `None` means [`credentials::default_path`].
    pub auth_file: Option<PathBuf>,
    /// How many times a blob download resumes after a failed connection.
    pub retries: u32,
    /// The largest manifest or index accepted, in bytes.
    pub max_manifest_size: u64,
    /// Blobs larger than this many bytes are uploaded in chunks.
    pub chunked_upload_threshold: u64,
    /// The size of one chunk of a chunked upload, in bytes.
    pub upload_chunk_size: u64,
    /// Time allowed to open a TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed between two reads of a response; a stalled blob download
    /// then resumes like a dropped one.
    pub read_timeout: Duration,
    pub user_agent: String,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            auth_file: None,
            retries: 5,
            max_manifest_size: 4 << 20,
            chunked_upload_threshold: 64 << 20,
            upload_chunk_size: 16 << 20,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            user_agent: format!("hull/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A manifest or index found by [`RegistryClient::resolve`], with its raw
/// bytes (verified against the descriptor's digest).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub descriptor: Descriptor,
    pub bytes: Vec<u8>,
}

/// An OCI distribution client. Clones share the HTTP connection pool, the
/// credentials and the token cache.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: RegistryConfig,
    tokens: auth::TokenCache,
    /// Credentials per registry name, looked up once from the config file
    /// or set by [`RegistryClient::login`].
    credentials: Mutex<HashMap<String, Option<Credentials>>>,
}

impl RegistryClient {
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        if config.upload_chunk_size == 0 {
            return Err(RegistryError::Config(
                "upload_chunk_size must be at least 1 byte".into(),
            ));
        }
        // Redirects are followed by this client, so that it decides which
        // requests carry the Authorization header.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| RegistryError::Config(format!("building the HTTP client failed: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                tokens: auth::TokenCache::default(),
                credentials: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Returns the config.json path this client reads and writes.
    pub fn auth_file(&self) -> PathBuf {
        self.inner
            .config
            .auth_file
            .clone()
            .unwrap_or_else(credentials::default_path)
    }

    /// Uses `credentials` for `registry` in this client and its clones,
    /// instead of what the config file holds; `None` means anonymous.
    pub fn set_credentials(&self, registry: &str, credentials: Option<Credentials>) {
        self.inner
            .credentials
            .lock()
            .unwrap()
            .insert(registry.to_string(), credentials);
        self.inner.tokens.forget_host(&api_host(registry));
    }

    /// Returns the credentials for `registry`, reading the config file on
    /// first use.
    pub async fn credentials(&self, registry: &str) -> Result<Option<Credentials>, RegistryError> {
        if let Some(known) = self.inner.credentials.lock().unwrap().get(registry) {
            return Ok(known.clone());
        }
        let path = self.auth_file();
        let name = registry.to_string();
        let found = tokio::task::spawn_blocking(move || DockerConfig::load(&path)?.get(&name))
            .await
            .map_err(|e| RegistryError::Config(format!("credential lookup panicked: {e}")))??;
        self.inner
            .credentials
            .lock()
            .unwrap()
            .insert(registry.to_string(), found.clone());
        Ok(found)
    }

    /// Checks `user` and `password` against `registry`'s `/v2/` endpoint
    /// and, when the registry accepts them, stores them in the config file
    /// and uses them from then on.
    pub async fn login(
        &self,
        registry: &str,
        user: &str,
        password: &str,
    ) -> Result<(), RegistryError> {
        let credentials = Credentials {
            username: user.to_string(),
            password: password.to_string(),
        };
        self.check_credentials(registry, &credentials).await?;
        let path = self.auth_file();
        let name = registry.to_string();
        let stored = credentials.clone();
        tokio::task::spawn_blocking(move || DockerConfig::load(&path)?.store(&name, &stored))
            .await
            .map_err(|e| RegistryError::Config(format!("storing credentials panicked: {e}")))??;
        tracing::info!(registry, user, "login succeeded, credentials stored");
        self.set_credentials(registry, Some(credentials));
        Ok(())
    }

    /// Removes the stored credentials of `registry`. Returns false when
    /// there were none.
    pub async fn logout(&self, registry: &str) -> Result<bool, RegistryError> {
        let path = self.auth_file();
        let name = registry.to_string();
        let removed = tokio::task::spawn_blocking(move || DockerConfig::load(&path)?.erase(&name))
            .await
            .map_err(|e| RegistryError::Config(format!("erasing credentials panicked: {e}")))??;
        self.set_credentials(registry, None);
        Ok(removed)
    }
}

/// Returns the host that serves the API of `registry` (`docker.io` is served by
/// `registry-1.docker.io`).
pub(crate) fn api_host(registry: &str) -> String {
    if registry == DEFAULT_REGISTRY {
        DEFAULT_REGISTRY_HOST.to_string()
    } else {
        registry.to_string()
    }
}

/// The target of a request: the registry (for credentials and messages),
/// its API host, its base URL and the repository.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub registry: String,
    pub host: String,
    pub base: String,
    pub repository: String,
}

impl Endpoint {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }
}

impl RegistryClient {
    pub(crate) fn endpoint(&self, reference: &Reference) -> Endpoint {
        self.endpoint_for(reference.registry(), reference.repository())
    }

    pub(crate) fn endpoint_for(&self, registry: &str, repository: &str) -> Endpoint {
        let host = api_host(registry);
        let scheme = transport::scheme_for(&host, &self.inner.config.insecure);
        Endpoint {
            registry: registry.to_string(),
            base: format!("{scheme}://{host}"),
            host,
            repository: repository.to_string(),
        }
    }
}

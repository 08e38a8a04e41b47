//! Registry clients for requests: one shared client that follows changes
//! of the credentials file, and one-off clients for requests that carry
//! their own credentials.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use hull_proto::hull::images::v1::RegistryAuth;
use tonic::Status;

use super::status;
use crate::registry::{Credentials, RegistryClient, RegistryConfig, RegistryError};

/// Docker's convention for an identity token stored as a password.
const IDENTITY_TOKEN_USER: &str = "<token>";

pub struct Registries {
    config: RegistryConfig,
    shared: Mutex<Shared>,
}

struct Shared {
    client: RegistryClient,
    /// Modification time and size of the credentials file when `client` was
    /// made. The client caches credentials, so a change made by hullctl
    /// login or logout needs a new client.
    auth_stamp: Option<(SystemTime, u64)>,
}

impl Registries {
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let client = RegistryClient::new(config.clone())?;
        let auth_stamp = auth_file_stamp(&client.auth_file());
        Ok(Self {
            config,
            shared: Mutex::new(Shared { client, auth_stamp }),
        })
    }

    /// Returns the shared client, remade when the credentials file changed.
    pub fn client(&self) -> Result<RegistryClient, Status> {
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = auth_file_stamp(&shared.client.auth_file());
        if stamp != shared.auth_stamp {
            tracing::info!(
                auth_file = %shared.client.auth_file().display(),
                "credentials file changed, reloading registry credentials"
            );
            shared.client =
                RegistryClient::new(self.config.clone()).map_err(status::from_registry)?;
            shared.auth_stamp = stamp;
        }
        Ok(shared.client.clone())
    }

    /// Returns a client that uses `auth` for `registry` when it names
    /// credentials, else the shared client.
    pub fn client_with(
        &self,
        registry: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<RegistryClient, Status> {
        let Some(credentials) = auth.map(credentials_of).transpose()?.flatten() else {
            return self.client();
        };
        let client = RegistryClient::new(self.config.clone()).map_err(status::from_registry)?;
        client.set_credentials(registry, Some(credentials));
        Ok(client)
    }
}

/// Converts request credentials; `None` when they are empty.
fn credentials_of(auth: &RegistryAuth) -> Result<Option<Credentials>, Status> {
    if !auth.identity_token.is_empty() {
        return Ok(Some(Credentials {
            username: IDENTITY_TOKEN_USER.to_string(),
            password: auth.identity_token.clone(),
        }));
    }
    if !auth.registry_token.is_empty() {
        // NOTE: the registry client takes a user and password only, so a
        // bearer token given as-is cannot be passed on.
        return Err(Status::unimplemented(
            "registry tokens are not supported: pass a user name and password",
        ));
    }
    if auth.username.is_empty() && auth.password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: auth.username.clone(),
        password: auth.password.clone(),
    }))
}

fn auth_file_stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

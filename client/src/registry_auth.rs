//! login and logout: check credentials with the registry client and keep
//! them in docker's config.json, which hullctl reads for every request to a
//! registry.

use anyhow::Context;
use hull_images::registry::{RegistryClient, RegistryConfig};

use crate::GlobalArgs;

/// Builds a registry client with hullctl's insecure registries and auth file.
pub fn client(global: &GlobalArgs) -> anyhow::Result<RegistryClient> {
    let config = RegistryConfig {
        insecure: global.insecure_registries.clone(),
        auth_file: global.auth_file.clone(),
        ..RegistryConfig::default()
    };
    RegistryClient::new(config).context("failed to set up the registry client")
}

/// Checks `username` and `password` against `registry`, then stores them.
pub async fn login(
    global: &GlobalArgs,
    registry: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<()> {
    let client = client(global)?;
    client.login(registry, username, password).await?;
    Ok(())
}

/// Removes the stored credentials of `registry`; false when there were none.
pub async fn logout(global: &GlobalArgs, registry: &str) -> anyhow::Result<bool> {
    let client = client(global)?;
    Ok(client.logout(registry).await?)
}

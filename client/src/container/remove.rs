//! `rm`: everything a container owns, removed in an order that a crash at
//! any step can repeat.

use anyhow::{anyhow, bail};
use hull_proto::hull::images::v1 as pb;
use pb::images_client::ImagesClient;
use tonic::Code;

use super::create::ROOTFS_DIR;
use super::lifecycle;
use super::record::{ContainerRecord, State};
use super::Context;
use crate::bundle;

/// Removes container `id`. A running container needs `force`, which kills
/// it first. `volumes` also removes its anonymous volumes.
pub async fn remove(ctx: &Context, id: &str, force: bool, volumes: bool) -> anyhow::Result<()> {
    let Some(record) = ctx.store.read(id)? else {
        return Ok(());
    };
    let (state, _) = lifecycle::live_state(&record).await;
    if matches!(state, State::Running | State::Paused) {
        if !force {
            bail!(
                "cannot remove container {}: it is running; stop it first or use rm -f",
                record.name
            );
        }
        let _ = ctx.store.update(id, |record| record.stopped_by_user = true);
        if let Some(shim_record) = &record.shim {
            if let Some(shim) = super::shim::Shim::try_connect(id, shim_record).await {
                let _ = shim.kill("", libc::SIGKILL as u32, true).await;
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(10), shim.wait("")).await;
            }
        }
    }
    lifecycle::finish(ctx, id, false).await?;
    let dir = ctx.store.container_dir(id);
    let Some(_lock) = lifecycle::lock(&dir)? else {
        return Ok(());
    };
    let Some(record) = ctx.store.read(id)? else {
        return Ok(());
    };
    ctx.store
        .update(id, |record| record.state = State::Removing)?;
    remove_resources(ctx, &record, volumes).await
}

/// Unmounts and releases the rootfs, removes anonymous volumes when asked,
/// and removes the record. Each step accepts that an earlier run did it.
pub async fn remove_resources(
    ctx: &Context,
    record: &ContainerRecord,
    volumes: bool,
) -> anyhow::Result<()> {
    let dir = ctx.store.container_dir(&record.id);
    // A crash between starting the shim and recording it leaves a shim and
    // runtime state that the record does not name.
    for pid in super::shim::find_shims(&record.id) {
        super::shim::kill_and_wait(pid).await;
    }
    lifecycle::force_delete(ctx, &record.id).await;
    super::shim::remove_dead_sockets(&dir);
    if let Err(err) = super::network::teardown(ctx, &record.id).await {
        tracing::warn!(container = %record.id, error = %format!("{err:#}"), "failed to tear down the network");
    }
    let rootfs = dir.join(ROOTFS_DIR);
    if bundle::is_mount_point(&rootfs)? {
        hull_images::snapshot::unmount(&rootfs)
            .map_err(|err| anyhow!("failed to unmount {}: {err}", rootfs.display()))?;
    }
    let mut images = ImagesClient::new(ctx.images().await?);
    let released = images
        .release_rootfs(pb::ReleaseRootfsRequest {
            container_id: record.id.clone(),
        })
        .await;
    match released {
        Ok(_) => {}
        Err(status) if status.code() == Code::NotFound => {}
        Err(status) => bail!(
            "failed to release the rootfs of container {}: {}",
            record.name,
            status.message()
        ),
    }
    super::output::release(ctx, &record.id);
    let lock = ctx.store.lock()?;
    ctx.store.remove(&lock, &record.id)?;
    drop(lock);
    if volumes {
        let anonymous: Vec<String> = record
            .mounts
            .iter()
            .filter(|mount| mount.anonymous)
            .filter_map(|mount| mount.name.clone())
            .collect();
        super::volumes::remove_anonymous(ctx, &record.id, &anonymous);
    }
    Ok(())
}

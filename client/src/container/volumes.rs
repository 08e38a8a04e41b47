//! The container side of volumes: which containers use a volume, and the
//! removal of a container's anonymous volumes.

use super::store::Store;
use super::Context;
use crate::volume::Volumes;

/// Returns the names of the containers whose mounts use volume `name`.
pub fn users(store: &Store, name: &str) -> Vec<String> {
    match store.list() {
        Ok(records) => records
            .into_iter()
            .filter(|record| record.volumes.iter().any(|volume| volume == name))
            .map(|record| record.name)
            .collect(),
        Err(err) => {
            // An unreadable store must not let a used volume go.
            vec![format!("(unknown: {err:#})")]
        }
    }
}

/// Removes the anonymous volumes `names` of container `id`, which is
/// being removed; a volume that another container also mounts is kept.
pub fn remove_anonymous(ctx: &Context, id: &str, names: &[&str]) {
    let volumes = Volumes::new(&ctx.paths);
    for name in names {
        let in_use = |volume: &str| -> Vec<String> {
            match ctx.store.list() {
                Ok(records) => records
                    .into_iter()
                    .filter(|record| record.id != id)
                    .filter(|record| record.volumes.iter().any(|used| used == volume))
                    .map(|record| record.name)
                    .collect(),
                Err(err) => vec![format!("(unknown: {err:#})")],
            }
        };
        if let Err(err) = volumes.remove(name, &in_use, false) {
            tracing::warn!(container = %id, volume = %name, error = %format!("{err:#}"), "kept an anonymous volume");
        }
    }
}

//! The removal of a container's anonymous volumes.

use super::Context;
use crate::volume::command::ContainerVolumes;
use crate::volume::Volumes;

/// Removes the anonymous volumes `names` of a container whose record is
/// gone; a volume that another container also mounts is kept. A volume
/// left by a failure here is anonymous and unused, so `volume prune`
/// removes it.
pub fn remove_anonymous(ctx: &Context, id: &str, names: &[String]) {
    let users = match ContainerVolumes::load(&ctx.paths) {
        Ok(users) => users,
        Err(err) => {
            eprintln!("hullctl: kept the anonymous volumes of container {id}: {err:#}");
            return;
        }
    };
    let volumes = Volumes::new(&ctx.paths);
    for name in names {
        if let Err(err) = volumes.remove(name, &|volume| users.users(volume), false) {
            eprintln!("hullctl: kept anonymous volume {name} of container {id}: {err:#}");
        }
    }
}

//! Containers: docker-style commands over hull-imaged and one shim per
//! container, with no daemon. See [`lifecycle`] for how a container that
//! exits by itself is cleaned up.

mod attach;
pub mod cli;
mod cp;
mod create;
pub mod inspect;
mod lifecycle;
pub mod network;
pub mod options;
mod output;
mod record;
mod remove;
mod run;
mod shim;
mod signal;
mod stats;
pub mod store;
mod top;
mod tty;
pub mod volumes;

use tokio::sync::OnceCell;
use tonic::transport::Channel;

use crate::paths::Paths;
use crate::GlobalArgs;

pub use store::Store;

/// What every container command needs: the directories, the record store
/// and a connection to hull-imaged, made on first use.
pub struct Context {
    pub paths: Paths,
    pub global: GlobalArgs,
    pub store: Store,
    images: OnceCell<Channel>,
}

impl Context {
    pub fn new(global: &GlobalArgs) -> Context {
        let paths = Paths::new(global);
        Context {
            store: Store::new(&paths),
            paths,
            global: global.clone(),
            images: OnceCell::new(),
        }
    }

    /// Returns the channel to hull-imaged, starting the daemon when its
    /// socket is absent.
    pub async fn images(&self) -> anyhow::Result<Channel> {
        self.images
            .get_or_try_init(|| crate::daemon::connect_or_start(&self.global))
            .await
            .cloned()
    }
}

/// The current time in RFC 3339 with nanoseconds, as docker prints it.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Returns true once container `id` has no running process and its
/// logging program has written the last output: the shim reports the exit
/// only after the logger has read both streams to their end.
pub async fn has_exited(store: &Store, id: &str) -> bool {
    match store.read(id) {
        Ok(Some(record)) => {
            let (state, _) = lifecycle::live_state(&record).await;
            !matches!(state, record::State::Running | record::State::Paused)
        }
        _ => true,
    }
}

//! The gRPC services of hull-imaged: hull's own `hull.images.v1.Images`
//! and the Kubernetes CRI `runtime.v1.ImageService`, both over one
//! [`Store`] and one set of registry clients.

mod convert;
mod copy;
mod cri;
mod fsinfo;
mod images;
mod import_export;
mod local;
mod lookup;
mod registries;
mod remote;
mod server;
pub mod socket;
mod status;
mod transfer;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::store::Store;

pub use registries::Registries;
pub use server::{serve, ServeError};

/// State shared by both services and every request.
#[derive(Clone)]
pub struct Daemon {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registries: Registries,
    /// Becomes true when the daemon stops, so that running pulls and
    /// pushes end.
    shutdown: watch::Receiver<bool>,
    /// Scratch space for copies between registries, inside ROOT.
    scratch: PathBuf,
}

impl Daemon {
    pub fn new(store: Store, registries: Registries, shutdown: watch::Receiver<bool>) -> Self {
        let scratch = store.root().join("tmp");
        Self {
            inner: Arc::new(Inner {
                store,
                registries,
                shutdown,
                scratch,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn registries(&self) -> &Registries {
        &self.inner.registries
    }

    fn scratch(&self) -> &std::path::Path {
        &self.inner.scratch
    }

    fn shutdown(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.clone()
    }

    /// Runs blocking store work on tokio's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T, tonic::Status>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, tonic::Status> + Send + 'static,
    {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|err| tonic::Status::internal(format!("store task failed: {err}")))?
    }
}

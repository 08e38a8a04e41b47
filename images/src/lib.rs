//! hull's image service: a registry client for the OCI distribution spec,
//! a crash-safe content store, layers unpacked into overlayfs snapshots,
//! runtime bundles made from image configs, and the gRPC API that serves
//! them.

pub mod api;
pub mod archive;
pub mod bundle;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod snapshot;
pub mod store;
pub mod unpack;

pub use reference::Reference;

//! The image store against a private docker-registry: pulls of OCI,
//! Docker and multi-platform images, corrupt and interrupted downloads,
//! gc, push read back by skopeo and podman, and OCI and docker archives.

mod archive;
mod fixture;
mod pull;
mod push;

//! hullctl's container commands end to end: a private store, hull-imaged
//! and shims per test, and busybox from a loopback registry.

mod bad_input;
mod crash;
mod debian;
mod lifecycle;
mod logs;
mod networks;
mod terminal;
mod volumes;

//! hullctl's `top`, `stats` and `cp` end to end: a private store, hull-imaged
//! and shims per test, and busybox from a loopback registry.

mod cp;
mod top_stats;

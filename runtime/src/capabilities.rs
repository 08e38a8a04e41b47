//! The five capability sets of `process.capabilities`, applied with the
//! `caps` crate.

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::LinuxCapabilities;

use crate::{Error, Result};

/// The capability sets of a process, parsed from the spec.
#[derive(Debug, Clone, Default)]
pub struct Sets {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    pub inheritable: CapsHashSet,
    pub permitted: CapsHashSet,
    pub ambient: CapsHashSet,
}

fn convert(
    set: &'static str,
    names: &Option<oci_spec::runtime::Capabilities>,
) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for cap in names.iter().flatten() {
        let name = cap.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{name}")
        };
        let parsed: Capability = name.parse().map_err(|_| {
            Error::Spec(format!(
                "process.capabilities.{set}: unknown capability \"{name}\""
            ))
        })?;
        out.insert(parsed);
    }
    Ok(out)
}

impl Sets {
    pub fn from_spec(caps: &LinuxCapabilities) -> Result<Sets> {
        let sets = Sets {
            bounding: convert("bounding", caps.bounding())?,
            effective: convert("effective", caps.effective())?,
            inheritable: convert("inheritable", caps.inheritable())?,
            permitted: convert("permitted", caps.permitted())?,
            ambient: convert("ambient", caps.ambient())?,
        };
        Ok(sets)
    }

    /// Drops every capability outside the bounding set. Runs while the
    /// process still has CAP_SETPCAP, before the user changes.
    pub fn apply_bounding(&self) -> Result<()> {
        for cap in caps::all() {
            if !self.bounding.contains(&cap)
                && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
            {
                caps::drop(None, CapSet::Bounding, cap).map_err(|e| {
                    Error::Message(format!("drop {cap} from the bounding set: {e}"))
                })?;
            }
        }
        Ok(())
    }

    /// Sets the permitted, effective and inheritable sets, then raises the
    /// ambient ones. Runs after the user changed with keep-caps set.
    pub fn apply_process_sets(&self) -> Result<()> {
        let fail = |what: &str, e: caps::errors::CapsError| {
            Error::Message(format!("set the {what} capabilities: {e}"))
        };
        // The kernel keeps effective within permitted at every step, so
        // effective shrinks to what both allow before permitted is set.
        let kept: CapsHashSet = self
            .effective
            .intersection(&self.permitted)
            .copied()
            .collect();
        caps::set(None, CapSet::Inheritable, &self.inheritable)
            .map_err(|e| fail("inheritable", e))?;
        caps::set(None, CapSet::Effective, &kept).map_err(|e| fail("effective", e))?;
        caps::set(None, CapSet::Permitted, &self.permitted).map_err(|e| fail("permitted", e))?;
        caps::set(None, CapSet::Effective, &self.effective).map_err(|e| fail("effective", e))?;
        caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient", e))?;
        for cap in &self.ambient {
            // The kernel raises an ambient capability only when it is
            // permitted and inheritable too. Specs often list ambient ones
            // without inheritable (`runc spec` does), and runc skips those.
            if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
                tracing::debug!("raise ambient {cap}: {e}");
            }
        }
        Ok(())
    }
}

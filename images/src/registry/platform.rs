//! The host's platform, and the choice of a manifest from an index by
//! platform.
//!
//! Variants are compared after defaults are filled in: arm64 without a
//! variant is `v8`, arm without one is `v7`. An entry with the exact
//! variant wins over one without a variant. After those, an arm host also
//! accepts older arm variants, because a v7 host runs v6 and v5 code. `os.version`
//! and `os.features` are ignored.

use oci_spec::image::{Arch, Descriptor, ImageIndex, Os, Platform, PlatformBuilder};

/// Returns the platform of the running binary: Linux on the architecture
/// it was built for, with the default variant of arm and arm64.
pub fn host_platform() -> Platform {
    let (arch, variant) = match std::env::consts::ARCH {
        "x86_64" => (Arch::Amd64, None),
        "x86" => (Arch::i386, None),
        "aarch64" => (Arch::ARM64, Some("v8")),
        "arm" => (Arch::ARM, Some("v7")),
        "powerpc64" if cfg!(target_endian = "little") => (Arch::PowerPC64le, None),
        "powerpc64" => (Arch::PowerPC64, None),
        "s390x" => (Arch::s390x, None),
        "riscv64" => (Arch::RISCV64, None),
        "loongarch64" => (Arch::LoongArch64, None),
        "mips64" if cfg!(target_endian = "little") => (Arch::Mips64le, None),
        "mips64" => (Arch::Mips64, None),
        other => (Arch::Other(other.to_string()), None),
    };
    let builder = PlatformBuilder::default().architecture(arch).os(Os::Linux);
    let builder = match variant {
        Some(variant) => builder.variant(variant.to_string()),
        None => builder,
    };
    builder.build().expect("architecture and os are set")
}

/// Returns the variant, or the architecture's default when it has none.
fn normalized_variant(platform: &Platform) -> Option<String> {
    let variant = platform
        .variant()
        .as_deref()
        .filter(|variant| !variant.is_empty());
    match (platform.architecture(), variant) {
        (Arch::ARM64, None) => Some("v8".to_string()),
        (Arch::ARM64, Some("8")) => Some("v8".to_string()),
        (Arch::ARM, None) => Some("v7".to_string()),
        (Arch::ARM, Some(v @ ("5" | "6" | "7" | "8"))) => Some(format!("v{v}")),
        (_, variant) => variant.map(str::to_string),
    }
}

/// Rates how well `candidate` fits `want`: `None` when it cannot run,
/// higher is better.
fn score(candidate: &Platform, want: &Platform) -> Option<u32> {
    if candidate.os() != want.os() || candidate.architecture() != want.architecture() {
        return None;
    }
    let expected = normalized_variant(want);
    let found = normalized_variant(candidate);
    let declared = candidate
        .variant()
        .as_deref()
        .is_some_and(|variant| !variant.is_empty());
    if found == expected {
        // An entry that states the variant beats one that only gets it by
        // default.
        return Some(if declared { 100 } else { 90 });
    }
    if !declared {
        return Some(80);
    }
    if *want.architecture() == Arch::ARM {
        let level = |variant: Option<&String>| {
            variant
                .and_then(|v| v.strip_prefix('v'))
                .and_then(|v| v.parse::<u32>().ok())
        };
        if let (Some(have), Some(need)) = (level(found.as_ref()), level(expected.as_ref())) {
            if have < need {
                return Some(have);
            }
        }
    }
    None
}

/// Picks the manifest for `want` from `index`: the best fit by the variant
/// rules above, the first one in index order among equals. Entries without
/// a platform are skipped.
pub fn select(index: &ImageIndex, want: &Platform) -> Option<Descriptor> {
    let mut best: Option<(u32, &Descriptor)> = None;
    for descriptor in index.manifests() {
        let Some(platform) = descriptor.platform() else {
            continue;
        };
        let Some(score) = score(platform, want) else {
            continue;
        };
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, descriptor));
        }
    }
    best.map(|(_, descriptor)| descriptor.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(arch: &str, variant: Option<&str>) -> Platform {
        let builder = PlatformBuilder::default()
            .architecture(Arch::from(arch))
            .os(Os::Linux);
        match variant {
            Some(variant) => builder.variant(variant.to_string()),
            None => builder,
        }
        .build()
        .unwrap()
    }

    /// Builds an index with one entry per (arch, variant). Entry i has a
    /// digest of the digit i repeated.
    fn index(entries: &[(&str, Option<&str>)]) -> ImageIndex {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .enumerate()
            .map(|(i, (arch, variant))| {
                let mut platform = serde_json::json!({"architecture": arch, "os": "linux"});
                if let Some(variant) = variant {
                    platform["variant"] = (*variant).into();
                }
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "size": 1,
                    "digest": format!("sha256:{}", i.to_string().repeat(64)),
                    "platform": platform,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({"schemaVersion": 2, "manifests": manifests}))
            .unwrap()
    }

    fn chosen(index: &ImageIndex, want: &Platform) -> Option<usize> {
        select(index, want).map(|descriptor| {
            let hex = descriptor.digest().digest();
            hex[..1].parse().unwrap()
        })
    }

    #[test]
    fn select_by_architecture() {
        let index = index(&[("arm64", None), ("amd64", None), ("s390x", None)]);
        assert_eq!(chosen(&index, &platform("amd64", None)), Some(1));
        assert_eq!(chosen(&index, &platform("s390x", None)), Some(2));
        assert_eq!(chosen(&index, &platform("ppc64le", None)), None);
    }

    #[test]
    fn select_prefers_exact_variant() {
        let index = index(&[("arm", None), ("arm", Some("v6")), ("arm", Some("v7"))]);
        assert_eq!(chosen(&index, &platform("arm", Some("v7"))), Some(2));
        assert_eq!(chosen(&index, &platform("arm", Some("v6"))), Some(1));
    }

    #[test]
    fn select_accepts_missing_variant() {
        let index = index(&[("amd64", None), ("arm64", None)]);
        assert_eq!(chosen(&index, &platform("arm64", Some("v8"))), Some(1));
        let index = self::index(&[("arm", None)]);
        assert_eq!(chosen(&index, &platform("arm", Some("v6"))), Some(0));
    }

    #[test]
    fn select_default_variants() {
        // arm64 means arm64/v8 and arm means arm/v7.
        let index = index(&[("arm64", Some("v8")), ("arm", Some("v7"))]);
        assert_eq!(chosen(&index, &platform("arm64", None)), Some(0));
        assert_eq!(chosen(&index, &platform("arm", None)), Some(1));
    }

    #[test]
    fn select_rejects_other_variant() {
        let index = index(&[("arm64", Some("v9")), ("amd64", Some("v3"))]);
        assert_eq!(chosen(&index, &platform("arm64", Some("v8"))), None);
        assert_eq!(chosen(&index, &platform("amd64", None)), None);
    }

    #[test]
    fn select_older_arm_variant() {
        let index = index(&[
            ("arm", Some("v5")),
            ("arm", Some("v6")),
            ("arm", Some("v8")),
        ]);
        assert_eq!(chosen(&index, &platform("arm", Some("v7"))), Some(1));
        assert_eq!(chosen(&index, &platform("arm", Some("v5"))), Some(0));
    }

    #[test]
    fn select_ignores_os_version_and_other_os() {
        let mut index = index(&[("amd64", None)]);
        let mut manifests = index.manifests().clone();
        let mut windows = manifests[0].clone();
        let mut windows_platform = platform("amd64", None);
        windows_platform.set_os(Os::Windows);
        windows.set_platform(Some(windows_platform));
        manifests.insert(0, windows);
        let mut versioned = manifests[1].platform().clone().unwrap();
        versioned.set_os_version(Some("10.0.17763".into()));
        manifests[1].set_platform(Some(versioned));
        index.set_manifests(manifests);
        assert_eq!(chosen(&index, &platform("amd64", None)), Some(0));
        let picked = select(&index, &platform("amd64", None)).unwrap();
        assert_eq!(picked.platform().as_ref().unwrap().os(), &Os::Linux);
    }

    #[test]
    fn select_skips_entries_without_platform() {
        let mut index = index(&[("amd64", None)]);
        let mut manifests = index.manifests().clone();
        manifests[0].set_platform(None);
        index.set_manifests(manifests);
        assert_eq!(select(&index, &platform("amd64", None)), None);
    }

    #[test]
    fn host_platform_is_linux() {
        let host = host_platform();
        assert_eq!(host.os(), &Os::Linux);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.architecture(), &Arch::Amd64);
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(host.variant().as_deref(), Some("v8"));
        }
    }
}

//! Mount requests from the command line: `-v`/`--volume`, `--mount` and
//! `--tmpfs`, parsed and checked with docker's rules before anything is
//! created.

use std::collections::BTreeMap;
use std::path::{Component, Path};

use anyhow::{anyhow, bail};

/// The kind of filesystem that a mount request puts at its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host file or directory.
    Bind,
    /// A named or anonymous volume's `_data` directory.
    Volume,
    /// A new tmpfs.
    Tmpfs,
}

impl MountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// Mount propagation of a bind mount, as `mount --make-*` names it.
pub const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// One mount that a container requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    pub kind: MountKind,
    /// The absolute host path of a bind mount or the name of a volume, and
    /// `None` for an anonymous volume and for tmpfs.
    pub source: Option<String>,
    /// Absolute, normalised path in the container, never `/`.
    pub target: String,
    pub readonly: bool,
    /// Volumes only: skip copying the image's content at the target into a
    /// new, empty volume.
    pub nocopy: bool,
    /// Binds only: one of [`PROPAGATIONS`], or `rprivate` when unset.
    pub propagation: Option<String>,
    /// Binds only: false binds the source without the mounts below it.
    pub recursive: bool,
    /// Binds only: create a missing source directory, as `-v` does, where
    /// `--mount` reports it.
    pub create_source: bool,
    /// Volumes only: labels given to the volume when this request creates it.
    pub labels: BTreeMap<String, String>,
    /// Tmpfs only: the size limit in bytes.
    pub tmpfs_size: Option<u64>,
    /// Tmpfs only: the permission bits of the tmpfs root.
    pub tmpfs_mode: Option<u32>,
    /// Tmpfs only: mount options from `--tmpfs /dst:opts`, applied after
    /// the defaults (`noexec,nosuid,nodev`), so that `exec` overrides
    /// `noexec`.
    pub tmpfs_options: Vec<String>,
}

impl MountRequest {
    /// Returns a request for `kind` at `target` with docker's defaults.
    pub fn new(kind: MountKind, target: String) -> MountRequest {
        MountRequest {
            kind,
            source: None,
            target,
            readonly: false,
            nocopy: false,
            propagation: None,
            recursive: true,
            create_source: false,
            labels: BTreeMap::new(),
            tmpfs_size: None,
            tmpfs_mode: None,
            tmpfs_options: Vec::new(),
        }
    }
}

/// Parses a `-v`/`--volume` value: `NAME:/dst[:opts]` (named volume),
/// `/host/src:/dst[:opts]` (bind mount) or `/dst` (anonymous volume).
///
/// The options are comma-separated: `ro` or `rw`, `z` or `Z` (SELinux
/// relabelling, accepted and ignored), `nocopy` (volumes), one propagation
/// of [`PROPAGATIONS`] (binds) and `consistent`, `cached` or `delegated`
/// (accepted and ignored, as on Linux docker).
pub fn parse_volume_flag(value: &str) -> anyhow::Result<MountRequest> {
    let invalid = |why: &str| anyhow!("invalid volume specification {value:?}: {why}");
    let parts: Vec<&str> = value.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => {
            if target.split(',').all(is_volume_option) && !target.starts_with('/') {
                return Err(invalid(&format!(
                    "{target:?} is an option list where the destination belongs: \
                     give SOURCE:/dst:{target}"
                )));
            }
            (Some(*source), *target, None)
        }
        [source, target, options] => (Some(*source), *target, Some(*options)),
        _ => return Err(invalid("expected [SOURCE:]/dst[:opts]")),
    };
    if target.is_empty() {
        return Err(invalid("the destination is empty"));
    }
    let target = normalise_target(target).map_err(|e| invalid(&e.to_string()))?;

    let mut request = match source {
        None => MountRequest::new(MountKind::Volume, target),
        Some("") => return Err(invalid("the source is empty")),
        Some(source) if source.starts_with('/') => {
            let mut request = MountRequest::new(MountKind::Bind, target);
            request.source = Some(clean_path(source));
            request.create_source = true;
            request
        }
        Some(name) => {
            validate_volume_name(name).map_err(|e| {
                invalid(&format!(
                    "{e}; to mount a host directory, give its absolute path"
                ))
            })?;
            let mut request = MountRequest::new(MountKind::Volume, target);
            request.source = Some(name.to_string());
            request
        }
    };
    if let Some(options) = options {
        apply_volume_options(&mut request, options).map_err(|e| invalid(&e.to_string()))?;
    }
    Ok(request)
}

fn is_volume_option(option: &str) -> bool {
    matches!(
        option,
        "ro" | "rw" | "z" | "Z" | "nocopy" | "consistent" | "cached" | "delegated"
    ) || PROPAGATIONS.contains(&option)
}

fn apply_volume_options(request: &mut MountRequest, options: &str) -> anyhow::Result<()> {
    let mut access = None;
    let mut label = None;
    for option in options.split(',') {
        match option {
            "ro" | "rw" => {
                if access.replace(option).is_some() {
                    bail!("option {option:?} conflicts with an earlier ro or rw");
                }
                request.readonly = option == "ro";
            }
            "z" | "Z" => {
                if label.replace(option).is_some() {
                    bail!("option {option:?} conflicts with an earlier z or Z");
                }
            }
            "consistent" | "cached" | "delegated" => {}
            "nocopy" => {
                if request.kind != MountKind::Volume {
                    bail!("option \"nocopy\" applies to volumes only, not to a host path");
                }
                request.nocopy = true;
            }
            propagation if PROPAGATIONS.contains(&propagation) => {
                if request.kind != MountKind::Bind {
                    bail!("propagation {propagation:?} applies to host paths only, not to volumes");
                }
                if request.propagation.is_some() {
                    bail!("option {propagation:?} conflicts with an earlier propagation");
                }
                request.propagation = Some(propagation.to_string());
            }
            "" => bail!("an option is empty"),
            unknown => bail!(
                "unknown option {unknown:?}: expected ro, rw, z, Z, nocopy or a propagation ({})",
                PROPAGATIONS.join(", ")
            ),
        }
    }
    Ok(())
}

/// Parses a `--mount` value: comma-separated `key=value` fields, where a
/// field may be double-quoted to contain commas.
///
/// The keys are `type` (`volume` by default, `bind`, `tmpfs`),
/// `source`/`src`, `target`/`destination`/`dst`, `readonly`/`ro` (`true`
/// when given without a value) and `consistency` (ignored). Volumes take
/// `volume-nocopy`, `volume-label=K=V` and `volume-driver` (`local` only).
/// Binds take `bind-propagation` and `bind-nonrecursive`. Tmpfs mounts take
/// `tmpfs-size` (bytes, or with a k, m, g, t or p suffix of powers of 1024)
/// and `tmpfs-mode` (octal).
pub fn parse_mount_flag(value: &str) -> anyhow::Result<MountRequest> {
    let invalid = |why: String| anyhow!("invalid mount specification {value:?}: {why}");
    let fields = split_fields(value).map_err(|e| invalid(e.to_string()))?;

    let mut kind = MountKind::Volume;
    let mut source = None;
    let mut target = None;
    let mut request = MountRequest::new(MountKind::Volume, String::new());
    // Fields that apply to one mount type only, checked once the type is known.
    let mut typed_fields: Vec<(MountKind, String)> = Vec::new();
    for field in &fields {
        let (key, field_value) = match field.split_once('=') {
            Some((key, field_value)) => (key.trim().to_ascii_lowercase(), Some(field_value)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let text = |what: &str| {
            field_value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(format!("field {key:?} needs a value: {what}")))
        };
        let flag = || parse_bool(&key, field_value).map_err(|e| invalid(e.to_string()));
        match key.as_str() {
            "type" => {
                kind = match text("bind, volume or tmpfs")? {
                    "bind" => MountKind::Bind,
                    "volume" => MountKind::Volume,
                    "tmpfs" => MountKind::Tmpfs,
                    other => {
                        return Err(invalid(format!(
                            "unsupported type {other:?}: expected bind, volume or tmpfs"
                        )))
                    }
                }
            }
            "source" | "src" => source = Some(text("a host path or volume name")?.to_string()),
            "target" | "destination" | "dst" => target = Some(text("a path in the container")?),
            "readonly" | "ro" => request.readonly = flag()?,
            "consistency" => {}
            "volume-nocopy" => {
                request.nocopy = flag()?;
                typed_fields.push((MountKind::Volume, key));
            }
            "volume-label" => {
                let label = text("KEY=VALUE")?;
                let (label_key, label_value) = label.split_once('=').unwrap_or((label, ""));
                if label_key.is_empty() {
                    return Err(invalid(format!("label {label:?} has an empty key")));
                }
                request
                    .labels
                    .insert(label_key.to_string(), label_value.to_string());
                typed_fields.push((MountKind::Volume, key));
            }
            "volume-driver" => {
                let driver = text("local")?;
                if driver != "local" {
                    return Err(invalid(format!(
                        "volume driver {driver:?} is not supported: only \"local\" is"
                    )));
                }
                typed_fields.push((MountKind::Volume, key));
            }
            "bind-propagation" => {
                let propagation = text("a propagation")?;
                if !PROPAGATIONS.contains(&propagation) {
                    return Err(invalid(format!(
                        "invalid bind-propagation {propagation:?}: expected one of {}",
                        PROPAGATIONS.join(", ")
                    )));
                }
                request.propagation = Some(propagation.to_string());
                typed_fields.push((MountKind::Bind, key));
            }
            "bind-nonrecursive" => {
                request.recursive = !flag()?;
                typed_fields.push((MountKind::Bind, key));
            }
            "tmpfs-size" => {
                let size = text("a size such as 64m")?;
                request.tmpfs_size = Some(parse_size(size).map_err(|e| invalid(e.to_string()))?);
                typed_fields.push((MountKind::Tmpfs, key));
            }
            "tmpfs-mode" => {
                let mode = text("octal permission bits such as 1777")?;
                let bits = u32::from_str_radix(mode, 8)
                    .ok()
                    .filter(|bits| *bits <= 0o7777)
                    .ok_or_else(|| {
                        invalid(format!(
                            "invalid tmpfs-mode {mode:?}: expected octal 0 to 7777"
                        ))
                    })?;
                request.tmpfs_mode = Some(bits);
                typed_fields.push((MountKind::Tmpfs, key));
            }
            "" => return Err(invalid(String::from("a field is empty"))),
            unknown => {
                return Err(invalid(format!(
                    "unknown field {unknown:?}: expected type, source, target, readonly, \
                     volume-nocopy, volume-label, volume-driver, bind-propagation, \
                     bind-nonrecursive, tmpfs-size or tmpfs-mode"
                )))
            }
        }
    }

    if let Some((field_kind, key)) = typed_fields.iter().find(|(k, _)| *k != kind) {
        return Err(invalid(format!(
            "field {key:?} applies to type={} only, not to type={}",
            field_kind.as_str(),
            kind.as_str()
        )));
    }
    let target = target.ok_or_else(|| invalid(String::from("the target field is missing")))?;
    request.kind = kind;
    request.target = normalise_target(target).map_err(|e| invalid(e.to_string()))?;
    match kind {
        MountKind::Bind => {
            let source = source
                .ok_or_else(|| invalid(String::from("a bind mount needs source=/host/path")))?;
            if !source.starts_with('/') {
                return Err(invalid(format!(
                    "bind source {source:?} is not an absolute path"
                )));
            }
            request.source = Some(clean_path(&source));
        }
        MountKind::Volume => {
            if let Some(name) = &source {
                validate_volume_name(name)?;
            }
            request.source = source;
        }
        MountKind::Tmpfs => {
            if let Some(source) = source {
                return Err(invalid(format!(
                    "a tmpfs mount takes no source, but source={source:?} is given"
                )));
            }
        }
    }
    Ok(request)
}

/// Parses a `--tmpfs` value: `/dst[:opts]`, where `opts` are tmpfs mount
/// options such as `size=64m,mode=1770,exec,uid=1000`.
pub fn parse_tmpfs_flag(value: &str) -> anyhow::Result<MountRequest> {
    let invalid = |why: String| anyhow!("invalid tmpfs specification {value:?}: {why}");
    let (target, options) = match value.split_once(':') {
        Some((target, options)) => (target, Some(options)),
        None => (value, None),
    };
    let target = normalise_target(target).map_err(|e| invalid(e.to_string()))?;
    let mut request = MountRequest::new(MountKind::Tmpfs, target);
    for option in options.into_iter().flat_map(|options| options.split(',')) {
        match option {
            "" => return Err(invalid(String::from("an option is empty"))),
            "ro" => request.readonly = true,
            "rw" => request.readonly = false,
            option if option.contains(':') => {
                return Err(invalid(format!("option {option:?} contains a colon")))
            }
            option => request.tmpfs_options.push(option.to_string()),
        }
    }
    Ok(request)
}

/// Splits `--mount` fields at commas outside double quotes and removes the
/// quotes, as a CSV reader does.
fn split_fields(value: &str) -> anyhow::Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    if quoted {
        bail!("a double quote is not closed");
    }
    fields.push(field);
    Ok(fields)
}

fn parse_bool(key: &str, value: Option<&str>) -> anyhow::Result<bool> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(other) => bail!("field {key:?} takes true or false, not {other:?}"),
    }
}

/// Parses a size in bytes with an optional k, m, g, t or p suffix (powers
/// of 1024, optionally followed by `i` and `b`): `65536`, `64m`, `1.5GiB`.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let invalid =
        || anyhow!("invalid size {text:?}: expected bytes or a number with k, m, g, t or p");
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let multiplier: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(invalid()),
    };
    if number.is_empty() || number.starts_with('.') {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

/// Checks a volume name against the local driver's rule: an ASCII letter
/// or digit, then at least one letter, digit, `_`, `.` or `-`.
pub fn validate_volume_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() {
        bail!("invalid volume name \"\": the name is empty");
    }
    if !first_ok || !rest_ok || name.len() < 2 {
        bail!(
            "invalid volume name {name:?}: a name is two or more of [a-zA-Z0-9_.-], \
             starting with a letter or digit"
        );
    }
    Ok(())
}

/// Returns `target` as an absolute path without `.`, `..` or repeated
/// slashes, and rejects relative paths and `/`.
pub fn normalise_target(target: &str) -> anyhow::Result<String> {
    if !target.starts_with('/') {
        bail!("destination {target:?} is not an absolute path");
    }
    let clean = clean_path(target);
    if clean == "/" {
        bail!("destination {target:?} is the container's root, which cannot be a mount point");
    }
    Ok(clean)
}

/// Cleans an absolute path lexically: `/a//b/./c/../d` becomes `/a/b/d`,
/// and `..` at the root stays at the root.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().unwrap_or_default()),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flag_forms() {
        let anonymous = parse_volume_flag("/data").unwrap();
        assert_eq!(anonymous.kind, MountKind::Volume);
        assert_eq!(anonymous.source, None);
        assert_eq!(anonymous.target, "/data");

        let named = parse_volume_flag("cache:/var/cache/:ro,nocopy").unwrap();
        assert_eq!(named.kind, MountKind::Volume);
        assert_eq!(named.source.as_deref(), Some("cache"));
        assert_eq!(named.target, "/var/cache");
        assert!(named.readonly);
        assert!(named.nocopy);

        let bind = parse_volume_flag("/srv//www/:/usr/share/www:rshared,Z").unwrap();
        assert_eq!(bind.kind, MountKind::Bind);
        assert_eq!(bind.source.as_deref(), Some("/srv/www"));
        assert_eq!(bind.target, "/usr/share/www");
        assert_eq!(bind.propagation.as_deref(), Some("rshared"));
        assert!(bind.create_source);
        assert!(!bind.readonly);
    }

    #[test]
    fn volume_flag_errors() {
        let cases = [
            ("", "destination is empty"),
            ("data", "not an absolute path"),
            ("/", "container's root"),
            ("/a/..", "container's root"),
            ("vol:relative", "not an absolute path"),
            (":/dst", "source is empty"),
            ("/dst:ro", "where the destination belongs"),
            ("a:/b:c:d", "expected [SOURCE:]/dst[:opts]"),
            ("./dir:/dst", "give its absolute path"),
            ("x:/dst", "invalid volume name"),
            ("-x:/dst", "invalid volume name"),
            ("vol:/dst:bogus", "unknown option \"bogus\""),
            ("vol:/dst:ro,rw", "conflicts"),
            ("vol:/dst:rshared", "applies to host paths only"),
            ("/src:/dst:nocopy", "applies to volumes only"),
            ("/src:/dst:shared,slave", "conflicts"),
            ("vol:/dst:ro,", "an option is empty"),
        ];
        for (value, expected) in cases {
            let error = parse_volume_flag(value).expect_err(value).to_string();
            assert!(error.contains(expected), "{value:?}: {error}");
            if !value.is_empty() {
                assert!(error.contains(&format!("{value:?}")), "{value:?}: {error}");
            }
        }
    }

    #[test]
    fn mount_flag_forms() {
        let volume =
            parse_mount_flag("source=cache,target=/cache,volume-nocopy,volume-label=a=b").unwrap();
        assert_eq!(volume.kind, MountKind::Volume);
        assert_eq!(volume.source.as_deref(), Some("cache"));
        assert!(volume.nocopy);
        assert_eq!(volume.labels.get("a").map(String::as_str), Some("b"));

        let anonymous = parse_mount_flag("type=volume,dst=/x,readonly=false").unwrap();
        assert_eq!(anonymous.source, None);
        assert!(!anonymous.readonly);

        let bind = parse_mount_flag(
            "type=bind,src=/srv,destination=/srv,ro,bind-propagation=rslave,bind-nonrecursive=1",
        )
        .unwrap();
        assert_eq!(bind.kind, MountKind::Bind);
        assert!(bind.readonly);
        assert!(!bind.recursive);
        assert!(!bind.create_source);
        assert_eq!(bind.propagation.as_deref(), Some("rslave"));

        let tmpfs =
            parse_mount_flag("type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(tmpfs.kind, MountKind::Tmpfs);
        assert_eq!(tmpfs.tmpfs_size, Some(64 << 20));
        assert_eq!(tmpfs.tmpfs_mode, Some(0o1770));

        let quoted = parse_mount_flag("\"volume-label=k=a,b\",target=/q").unwrap();
        assert_eq!(quoted.labels.get("k").map(String::as_str), Some("a,b"));
    }

    #[test]
    fn mount_flag_errors() {
        let cases = [
            ("type=bind,target=/x", "needs source=/host/path"),
            ("type=bind,source=rel,target=/x", "not an absolute path"),
            ("type=tmpfs,source=x,target=/x", "takes no source"),
            ("type=nfs,target=/x", "unsupported type \"nfs\""),
            ("source=vol", "target field is missing"),
            ("target=/", "container's root"),
            ("target=x", "not an absolute path"),
            ("target=/x,bogus=1", "unknown field \"bogus\""),
            ("target=/x,readonly=maybe", "takes true or false"),
            (
                "type=bind,source=/s,target=/x,volume-nocopy",
                "applies to type=volume only",
            ),
            (
                "target=/x,bind-propagation=rshared",
                "applies to type=bind only",
            ),
            ("target=/x,tmpfs-size=1m", "applies to type=tmpfs only"),
            (
                "type=bind,source=/s,target=/x,bind-propagation=up",
                "invalid bind-propagation",
            ),
            ("type=tmpfs,target=/x,tmpfs-size=lots", "invalid size"),
            ("type=tmpfs,target=/x,tmpfs-mode=9", "invalid tmpfs-mode"),
            ("target=/x,volume-driver=nfs", "not supported"),
            ("target=/x,source=", "needs a value"),
            ("target=/x,,", "a field is empty"),
            ("\"target=/x", "not closed"),
            ("source=a/b,target=/x", "invalid volume name"),
        ];
        for (value, expected) in cases {
            let error = parse_mount_flag(value).expect_err(value).to_string();
            assert!(error.contains(expected), "{value:?}: {error}");
        }
    }

    #[test]
    fn tmpfs_flag_forms() {
        let tmpfs = parse_tmpfs_flag("/run/x/:size=1m,exec,ro").unwrap();
        assert_eq!(tmpfs.target, "/run/x");
        assert!(tmpfs.readonly);
        assert_eq!(tmpfs.tmpfs_options, ["size=1m", "exec"]);
        assert!(parse_tmpfs_flag("run").is_err());
        assert!(parse_tmpfs_flag("/run:").is_err());
    }

    #[test]
    fn sizes() {
        let cases = [
            ("65536", 65536),
            ("64k", 64 << 10),
            ("64M", 64 << 20),
            ("1.5g", 3 << 29),
            ("2GiB", 2 << 30),
            ("1 kb", 1024),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text).unwrap(), bytes, "{text}");
        }
        for text in ["", "k", "-1", "1x", ".5m", "1..2"] {
            assert!(parse_size(text).is_err(), "{text}");
        }
    }

    #[test]
    fn volume_names() {
        for name in ["ab", "a1", "my_vol.2-x", "0123"] {
            validate_volume_name(name).unwrap();
        }
        for name in ["", "a", "_a", ".a", "a/b", "a b", "é1", "a:b"] {
            assert!(validate_volume_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn targets_are_cleaned() {
        assert_eq!(normalise_target("/a//b/./c/../d/").unwrap(), "/a/b/d");
        assert_eq!(normalise_target("/../x").unwrap(), "/x");
    }
}

//! docker's rules for `cp` arguments: which side is a container, and where
//! a copy goes from the kinds of its source and destination and from the
//! slashes at the end of their paths.

use std::ffi::{OsStr, OsString};

use anyhow::bail;

/// One side of a copy as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `-`: a tar stream on stdin or stdout.
    Stream,
    Host(String),
    Container {
        container: String,
        path: String,
    },
}

/// Parses a `cp` argument: `-`, `CONTAINER:PATH`, or a host path. A path
/// that is absolute or starts with `.` is a host path even with a colon in
/// it, as in docker, so `./a:b` names a host file.
pub fn parse_endpoint(argument: &str) -> Endpoint {
    if argument == "-" {
        return Endpoint::Stream;
    }
    if argument.starts_with('/') {
        return Endpoint::Host(argument.to_owned());
    }
    match argument.split_once(':') {
        Some((container, path)) if !container.starts_with('.') => Endpoint::Container {
            container: container.to_owned(),
            path: path.to_owned(),
        },
        _ => Endpoint::Host(argument.to_owned()),
    }
}

/// True when `path` names the contents of a directory: its last
/// component is `.`.
pub fn copies_contents(path: &str) -> bool {
    path == "." || path.ends_with("/.")
}

/// True when `path` can only name a directory: it ends in `/` or `/.`.
pub fn asserts_directory(path: &str) -> bool {
    path.ends_with('/') || copies_contents(path)
}

/// Returns the name that a source gets inside a destination directory:
/// the last component as given, or None for `/`, `.` and `..`, whose name
/// comes from the resolved path.
pub fn given_name(path: &str) -> Option<&OsStr> {
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    match last {
        "" | "." | ".." => None,
        name => Some(OsStr::new(name)),
    }
}

/// Whether a path names a directory or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Directory,
    Other,
}

/// The place a copy goes to, from docker's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Into the existing directory DEST, under this name.
    Into(OsString),
    /// The source directory's contents into the existing directory DEST.
    Contents,
    /// At DEST itself, created or replacing a file.
    At,
}

/// Chooses where a copy goes from the kinds of its source and of the
/// destination (None when missing), and from the slashes of the paths as
/// given.
pub fn plan(
    source: &str,
    source_kind: Kind,
    source_name: Option<&OsStr>,
    destination: &str,
    destination_kind: Option<Kind>,
) -> anyhow::Result<Target> {
    if source_kind == Kind::Other && asserts_directory(source) {
        bail!("cannot copy {source}: it is not a directory");
    }
    let into = |name: Option<&OsStr>| match name {
        Some(name) => Target::Into(name.to_owned()),
        None => Target::Contents,
    };
    match (source_kind, destination_kind) {
        (Kind::Other, Some(Kind::Directory)) => Ok(into(source_name)),
        (Kind::Other, Some(Kind::Other)) if asserts_directory(destination) => {
            bail!("cannot copy to {destination}: it is not a directory")
        }
        (Kind::Other, None) if asserts_directory(destination) => bail!(
            "destination directory {destination} does not exist: create it, or drop the trailing / to copy to a file of that name"
        ),
        (Kind::Other, _) => Ok(Target::At),
        (Kind::Directory, Some(Kind::Directory)) if copies_contents(source) => Ok(Target::Contents),
        (Kind::Directory, Some(Kind::Directory)) => Ok(into(source_name)),
        (Kind::Directory, Some(Kind::Other)) => {
            bail!("cannot copy directory {source} to {destination}: it is a file")
        }
        (Kind::Directory, None) => Ok(Target::At),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(parse_endpoint("-"), Endpoint::Stream);
        assert_eq!(
            parse_endpoint("web:/etc/passwd"),
            Endpoint::Container {
                container: "web".into(),
                path: "/etc/passwd".into()
            }
        );
        assert_eq!(
            parse_endpoint("web:"),
            Endpoint::Container {
                container: "web".into(),
                path: "".into()
            }
        );
        assert_eq!(
            parse_endpoint("/tmp/a:b"),
            Endpoint::Host("/tmp/a:b".into())
        );
        assert_eq!(parse_endpoint("./a:b"), Endpoint::Host("./a:b".into()));
        assert_eq!(
            parse_endpoint("file.txt"),
            Endpoint::Host("file.txt".into())
        );
    }

    #[test]
    fn trailing_forms() {
        assert!(copies_contents("dir/."));
        assert!(copies_contents("."));
        assert!(!copies_contents("dir/"));
        assert!(!copies_contents("dir/.x"));
        assert!(asserts_directory("dir/"));
        assert!(asserts_directory("dir/."));
        assert!(!asserts_directory("dir"));
    }

    #[test]
    fn given_names() {
        assert_eq!(given_name("/a/b"), Some(OsStr::new("b")));
        assert_eq!(given_name("a/b//"), Some(OsStr::new("b")));
        assert_eq!(given_name("b"), Some(OsStr::new("b")));
        assert_eq!(given_name("/"), None);
        assert_eq!(given_name("a/.."), None);
        assert_eq!(given_name("a/."), None);
    }

    fn name(text: &str) -> Option<&OsStr> {
        Some(OsStr::new(text))
    }

    #[test]
    fn plan_for_file_source() {
        let into = Target::Into("f".into());
        assert_eq!(
            plan("f", Kind::Other, name("f"), "d", Some(Kind::Directory)).unwrap(),
            into
        );
        assert_eq!(
            plan("f", Kind::Other, name("f"), "d/", Some(Kind::Directory)).unwrap(),
            into
        );
        assert_eq!(
            plan("f", Kind::Other, name("f"), "g", Some(Kind::Other)).unwrap(),
            Target::At
        );
        assert_eq!(
            plan("f", Kind::Other, name("f"), "g", None).unwrap(),
            Target::At
        );
        let err = plan("f", Kind::Other, name("f"), "g/", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = plan("f", Kind::Other, name("f"), "g/", Some(Kind::Other))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a directory"), "{err}");
        let err = plan("f/", Kind::Other, name("f"), "d", Some(Kind::Directory))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a directory"), "{err}");
    }

    #[test]
    fn plan_for_directory_source() {
        assert_eq!(
            plan(
                "src",
                Kind::Directory,
                name("src"),
                "d",
                Some(Kind::Directory)
            )
            .unwrap(),
            Target::Into("src".into())
        );
        assert_eq!(
            plan("src/.", Kind::Directory, None, "d", Some(Kind::Directory)).unwrap(),
            Target::Contents
        );
        assert_eq!(
            plan("src", Kind::Directory, name("src"), "new", None).unwrap(),
            Target::At
        );
        assert_eq!(
            plan("src/.", Kind::Directory, None, "new/", None).unwrap(),
            Target::At
        );
        assert_eq!(
            plan("/", Kind::Directory, None, "d", Some(Kind::Directory)).unwrap(),
            Target::Contents
        );
        let err = plan("src", Kind::Directory, name("src"), "f", Some(Kind::Other))
            .unwrap_err()
            .to_string();
        assert!(err.contains("it is a file"), "{err}");
    }
}

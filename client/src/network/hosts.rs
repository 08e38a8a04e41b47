//! Containers' `/etc/hosts` files: the container's own names, and one line
//! per container it shares a network with.
//!
//! A hosts file is bind-mounted into its container by inode, so it is
//! always rewritten in place and never replaced by a rename.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::Context;

/// Comment that ends every peer line, so that a rewrite replaces the peer
/// lines and keeps every other line (such as entries that the container
/// core or a user added). Resolvers ignore text after `#`.
const PEER_MARK: &str = "# hull network peer";

/// A container that another container can reach by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub ip: Ipv4Addr,
}

/// Returns a new hosts file: loopback names, then the container's own
/// hostname and name on its first address (none without a network), then
/// the peers.
pub fn render(hostname: &str, name: &str, own_ip: Option<Ipv4Addr>, peers: &[Peer]) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let mut names = vec![hostname];
    if name != hostname {
        names.push(name);
    }
    names.retain(|name| !name.is_empty());
    if let (Some(ip), false) = (own_ip, names.is_empty()) {
        text.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    text.push_str(&peer_lines(peers));
    text
}

/// Replaces the peer lines of `current` with lines for `peers`.
pub fn replace_peers(current: &str, peers: &[Peer]) -> String {
    let mut text: String = current
        .lines()
        .filter(|line| !line.ends_with(PEER_MARK))
        .map(|line| format!("{line}\n"))
        .collect();
    text.push_str(&peer_lines(peers));
    text
}

fn peer_lines(peers: &[Peer]) -> String {
    peers
        .iter()
        .map(|peer| format!("{}\t{}\t{PEER_MARK}\n", peer.ip, peer.name))
        .collect()
}

/// Writes `text` into the file at `path` in place, creating it if absent.
///
/// The new text is written over the old from offset 0 before the file is
/// cut to its new length, so that a reader never finds it empty.
pub fn write_in_place(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("failed to open hosts file {}", path.display()))?;
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(text.as_bytes()))
        .and_then(|()| file.set_len(text.len() as u64))
        .with_context(|| format!("failed to write hosts file {}", path.display()))
}

/// Rewrites the peer lines of the hosts file at `path` in place.
pub fn update_peers(path: &Path, peers: &[Peer]) -> anyhow::Result<()> {
    let current = fs::read_to_string(path)
        .with_context(|| format!("failed to read hosts file {}", path.display()))?;
    let text = replace_peers(&current, peers);
    if text != current {
        write_in_place(path, &text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(name: &str, ip: [u8; 4]) -> Peer {
        Peer {
            name: name.to_string(),
            ip: Ipv4Addr::from(ip),
        }
    }

    #[test]
    fn render_lists_own_names_and_peers() {
        let text = render(
            "abc123",
            "web",
            Some(Ipv4Addr::new(10, 89, 3, 2)),
            &[peer("db", [10, 89, 3, 3])],
        );
        assert_eq!(
            text,
            "127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             10.89.3.2\tabc123 web\n\
             10.89.3.3\tdb\t# hull network peer\n"
        );
        let alone = render("web", "web", None, &[]);
        assert_eq!(alone.lines().count(), 2);
        let unnamed = render("", "web", Some(Ipv4Addr::new(10, 89, 3, 2)), &[]);
        assert!(unnamed.ends_with("10.89.3.2\tweb\n"), "{unnamed}");
    }

    #[test]
    fn replace_peers_keeps_other_lines() {
        let current = "127.0.0.1\tlocalhost\n\
                       192.0.2.9\tregistry.local\n\
                       10.89.3.3\tdb\t# hull network peer\n";
        let text = replace_peers(current, &[peer("cache", [10, 89, 3, 4])]);
        assert_eq!(
            text,
            "127.0.0.1\tlocalhost\n\
             192.0.2.9\tregistry.local\n\
             10.89.3.4\tcache\t# hull network peer\n"
        );
        assert_eq!(
            replace_peers(&text, &[]),
            "127.0.0.1\tlocalhost\n192.0.2.9\tregistry.local\n"
        );
    }

    #[test]
    fn write_in_place_keeps_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("hull-hosts-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        write_in_place(&path, "127.0.0.1\tlocalhost\n10.0.0.1\tlong-name-to-cut\n").unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        write_in_place(&path, "127.0.0.1\tlocalhost\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "127.0.0.1\tlocalhost\n");
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
        fs::remove_dir_all(&dir).unwrap();
    }
}

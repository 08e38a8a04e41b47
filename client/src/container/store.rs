//! Container records on disk: `<root>/containers/<id>/container.json`.
//!
//! Every change to a record happens under an exclusive flock on
//! `<root>/containers/.lock`, and a record is replaced by writing a
//! temporary file and renaming it over the old one, so two hullctl
//! commands never lose each other's changes and a crash never leaves half a
//! record. A record is written before anything else is made for its
//! container, so `ps` shows and `rm` removes whatever a crash leaves.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use rustix::fs::{flock, FlockOperation};

use super::record::ContainerRecord;
use crate::paths::Paths;

/// Record file in each container directory.
pub const RECORD_FILE: &str = "container.json";
const LOCK_FILE: &str = ".lock";

/// The container records below `<root>/containers`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// The held lock on the store; released on drop.
pub struct StoreLock {
    _file: File,
}

impl Store {
    pub fn new(paths: &Paths) -> Store {
        Store {
            dir: paths.containers(),
        }
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Takes the store's exclusive lock, waiting for other hullctl
    /// commands to release it.
    pub fn lock(&self) -> anyhow::Result<StoreLock> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("failed to create {}", self.dir.display()))?;
        let path = self.dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        flock(file.as_fd(), FlockOperation::LockExclusive)
            .with_context(|| format!("failed to lock {}", path.display()))?;
        Ok(StoreLock { _file: file })
    }

    /// Reads every record. Directories without a readable record are
    /// skipped with a warning, since a crash before the first write leaves
    /// only an empty directory.
    pub fn list(&self) -> anyhow::Result<Vec<ContainerRecord>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(anyhow!("failed to read {}: {err}", self.dir.display())),
        };
        let mut records = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to read {}", self.dir.display()))?;
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            match self.read(&id) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(container = %id, error = %format!("{err:#}"), "skipping unreadable container record")
                }
            }
        }
        records.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    /// Reads the record of container `id`, or None when it has none.
    pub fn read(&self, id: &str) -> anyhow::Result<Option<ContainerRecord>> {
        let path = self.container_dir(id).join(RECORD_FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(anyhow!("failed to read {}: {err}", path.display())),
        };
        let record = serde_json::from_slice(&text)
            .with_context(|| format!("invalid container record {}", path.display()))?;
        Ok(Some(record))
    }

    /// Writes `record` atomically. The caller holds the store lock.
    ///
    /// A process that dies at any point leaves the old or the new record,
    /// since the rename replaces it in one step. Only the first record is
    /// flushed to disk before the rename, so that a container outlives a
    /// power loss. Later writes skip the flush, which would cost about a
    /// millisecond each, and rely on the rename instead: ext4 (with its
    /// default `auto_da_alloc`) and btrfs write the data of a file that
    /// replaces another before they commit the rename.
    pub fn write(&self, _lock: &StoreLock, record: &ContainerRecord) -> anyhow::Result<()> {
        let dir = self.container_dir(&record.id);
        fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
        let path = dir.join(RECORD_FILE);
        let temporary = dir.join(format!(".{RECORD_FILE}.tmp"));
        let text = serde_json::to_vec_pretty(record)?;
        let write = || -> std::io::Result<()> {
            let first = !path.exists();
            let mut file = File::create(&temporary)?;
            file.write_all(&text)?;
            if first {
                file.sync_all()?;
            }
            fs::rename(&temporary, &path)
        };
        write().with_context(|| format!("failed to write {}", path.display()))
    }

    /// Reads, changes and writes the record of `id` under the store lock.
    /// Returns the changed record.
    pub fn update(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> anyhow::Result<ContainerRecord> {
        let lock = self.lock()?;
        let mut record = self
            .read(id)?
            .ok_or_else(|| anyhow!("no such container: {id}"))?;
        change(&mut record);
        self.write(&lock, &record)?;
        Ok(record)
    }

    /// Removes the container's directory. The caller holds the store lock
    /// and has unmounted the rootfs.
    pub fn remove(&self, _lock: &StoreLock, id: &str) -> anyhow::Result<()> {
        let dir = self.container_dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(anyhow!("failed to remove {}: {err}", dir.display())),
        }
    }

    /// Finds a container by full id, name or unique id prefix, as docker
    /// does.
    pub fn find(&self, key: &str) -> anyhow::Result<ContainerRecord> {
        if key.is_empty() {
            bail!("invalid container name or id: it is empty");
        }
        let records = self.list()?;
        if let Some(record) = records.iter().find(|record| record.id == key) {
            return Ok(record.clone());
        }
        if let Some(record) = records.iter().find(|record| record.name == key) {
            return Ok(record.clone());
        }
        let mut matches = records.iter().filter(|record| record.id.starts_with(key));
        match (matches.next(), matches.next()) {
            (Some(record), None) => Ok(record.clone()),
            (Some(_), Some(_)) => bail!(
                "container id prefix {key} matches more than one container: give more of the id"
            ),
            (None, _) => bail!("no such container: {key}"),
        }
    }
}

/// Checks a container name against docker's rule `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let bytes = name.as_bytes();
    let valid = bytes.len() >= 2
        && bytes.len() <= 128
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !valid {
        bail!(
            "invalid container name {name:?}: use 2 to 128 characters from [a-zA-Z0-9_.-], starting with a letter or digit"
        );
    }
    Ok(())
}

/// Returns a free docker-style name `adjective_noun`, with a number added
/// when every pair is taken.
pub fn generate_name(taken: &dyn Fn(&str) -> bool, seed: u64) -> String {
    const ADJECTIVES: [&str; 16] = [
        "brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nimble",
        "proud", "quiet", "sharp", "steady", "tidy", "witty",
    ];
    const NOUNS: [&str; 16] = [
        "anchor", "beacon", "cove", "dock", "ferry", "galley", "harbor", "keel", "mast", "oar",
        "pier", "quay", "rudder", "sail", "tide", "wharf",
    ];
    let pairs = ADJECTIVES.len() * NOUNS.len();
    for step in 0..pairs {
        let index = (seed as usize).wrapping_add(step) % pairs;
        let name = format!(
            "{}_{}",
            ADJECTIVES[index / NOUNS.len()],
            NOUNS[index % NOUNS.len()]
        );
        if !taken(&name) {
            return name;
        }
    }
    let mut number = 2u64;
    loop {
        let index = seed as usize % pairs;
        let name = format!(
            "{}_{}{number}",
            ADJECTIVES[index / NOUNS.len()],
            NOUNS[index % NOUNS.len()]
        );
        if !taken(&name) {
            return name;
        }
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rule() {
        for name in ["web", "a1", "my-app_1.0"] {
            assert!(validate_name(name).is_ok(), "{name}");
        }
        for name in ["", "a", "-web", "_x", "we/b", "a b", "ü1"] {
            assert!(validate_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn generated_name_skips_taken() {
        let first = generate_name(&|_| false, 7);
        let second = generate_name(&|name| name == first, 7);
        assert_ne!(first, second);
        assert!(validate_name(&second).is_ok());
        let numbered = generate_name(&|name| !name.ends_with('2'), 3);
        assert!(numbered.ends_with('2'), "{numbered}");
    }
}

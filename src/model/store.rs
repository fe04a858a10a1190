//! What the model wrote, kept so that an unchanged function never costs a second model call:
//! an LRU in memory, and one small file per entry on disk (`$XDG_CACHE_HOME/aidiag/results`),
//! which survives restarts. The disk part is bounded (oldest entries removed first), and an entry
//! that cannot be read or does not carry its own key is ignored and removed.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Entries kept in memory.
const MEMORY_ENTRIES: usize = 4096;
/// Entries kept on disk; about 1 KiB each.
pub const DISK_ENTRIES: usize = 20_000;

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    value: String,
}

pub struct Store {
    memory: Mutex<lru::LruCache<u64, String>>,
    dir: Option<PathBuf>,
    max_files: usize,
    writes: AtomicUsize,
    /// Shared by several machines (`cache.shared`): a temporary file's process id says nothing
    /// about a writer on another machine, so only age makes one stale.
    shared: bool,
    /// Part of every temporary file's name, so that writers on two machines with the same
    /// process id never write the same temporary file.
    nonce: u64,
}

/// `$XDG_CACHE_HOME/aidiag/results`, or `~/.cache/aidiag/results`.
pub fn default_dir() -> Option<PathBuf> {
    super::cache_dir().and_then(|models| models.parent().map(|p| p.join("results")))
}

impl Store {
    /// A store in memory only (`dir` None), or backed by `dir` with at most `max_files` entries.
    pub fn new(dir: Option<PathBuf>, max_files: usize) -> Store {
        Store::shared(dir, max_files, false)
    }

    /// A store in `dir` that other processes, here or on other machines (a shared filesystem),
    /// read and write at the same time when `shared`. Every entry is written to a temporary
    /// file and renamed into place, so a reader sees a whole entry or none.
    pub fn shared(dir: Option<PathBuf>, max_files: usize, shared: bool) -> Store {
        let nonce = xxhash_rust::xxh3::xxh3_64(
            format!(
                "{}\0{:?}\0{:?}",
                std::process::id(),
                std::time::SystemTime::now(),
                std::thread::current().id()
            )
            .as_bytes(),
        );
        Store {
            shared,
            nonce,
            memory: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(MEMORY_ENTRIES).expect("non-zero"),
            )),
            dir,
            max_files: max_files.max(1),
            writes: AtomicUsize::new(0),
        }
    }

    fn file(dir: &Path, key: u64) -> PathBuf {
        dir.join(format!("{key:016x}.json"))
    }

    pub fn get(&self, key: u64) -> Option<String> {
        if let Some(value) = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Some(value.clone());
        }
        let dir = self.dir.as_ref()?;
        let file = Self::file(dir, key);
        let bytes = std::fs::read(&file).ok()?;
        match serde_json::from_slice::<Entry>(&bytes) {
            Ok(entry) if entry.key == format!("{key:016x}") => {
                self.memory
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .put(key, entry.value.clone());
                Some(entry.value)
            }
            _ => {
                tracing::warn!(file = %file.display(), "ignoring a corrupt cache entry");
                let _ = std::fs::remove_file(&file);
                None
            }
        }
    }

    pub fn put(&self, key: u64, value: String) {
        self.memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(key, value.clone());
        let Some(dir) = &self.dir else { return };
        let entry = Entry {
            key: format!("{key:016x}"),
            value,
        };
        // Each write's own number: two threads never share a temporary file.
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            let file = Self::file(dir, key);
            let temporary =
                file.with_extension(format!("tmp{}-{n}-{:016x}", std::process::id(), self.nonce));
            let written = std::fs::write(&temporary, serde_json::to_vec(&entry)?)
                .and_then(|()| std::fs::rename(&temporary, &file));
            if written.is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            written
        };
        if let Err(error) = write() {
            tracing::warn!(dir = %dir.display(), "cannot write the result cache: {error}");
            return;
        }
        if n % 64 == 0 {
            self.trim(dir);
        }
    }

    /// Removes the oldest entries while there are more than `max_files`, and what killed
    /// writers left behind.
    fn trim(&self, dir: &Path) {
        super::remove_stale_temporaries(dir, !self.shared);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if files.len() <= self.max_files {
            return;
        }
        files.sort();
        let excess = files.len() - self.max_files;
        for (_, path) in files.into_iter().take(excess) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aidiag-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn entries_survive_a_restart_and_corrupt_ones_are_ignored() {
        let dir = temp_dir("restart");
        let store = Store::new(Some(dir.clone()), 100);
        store.put(7, "seven".to_owned());
        store.put(8, "eight".to_owned());
        let restarted = Store::new(Some(dir.clone()), 100);
        assert_eq!(restarted.get(7).as_deref(), Some("seven"));
        // A truncated entry, and an entry that carries another key, are not believed.
        std::fs::write(Store::file(&dir, 8), b"{\"key\": \"00").unwrap();
        std::fs::write(
            Store::file(&dir, 9),
            br#"{"key": "0000000000000007", "value": "x"}"#,
        )
        .unwrap();
        let restarted = Store::new(Some(dir.clone()), 100);
        assert_eq!(restarted.get(8), None);
        assert_eq!(restarted.get(9), None);
        assert!(
            !Store::file(&dir, 8).exists(),
            "the corrupt entry is removed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_disk_part_is_bounded() {
        let dir = temp_dir("bounded");
        let store = Store::new(Some(dir.clone()), 10);
        for key in 0..200 {
            store.put(key, format!("{key}"));
        }
        let files = std::fs::read_dir(&dir).unwrap().count();
        // Trimming runs every 64 writes, so the directory holds at most the bound plus 63.
        assert!(files <= 10 + 63, "{files} files");
        assert!(files >= 10, "{files} files");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporaries_of_dead_writers_are_removed_and_live_ones_kept() {
        let dir = temp_dir("stale");
        std::fs::create_dir_all(&dir).unwrap();
        // No process has the largest pid; this process is alive.
        let dead = dir.join(format!("0000000000000001.tmp{}-0", u32::MAX));
        let live = dir.join(format!("0000000000000002.tmp{}-0", std::process::id()));
        std::fs::write(&dead, b"half").unwrap();
        std::fs::write(&live, b"half").unwrap();
        let store = Store::new(Some(dir.clone()), 100);
        store.put(3, "three".to_owned());
        if Path::new("/proc/self").exists() {
            assert!(!dead.exists(), "the dead writer's temporary is removed");
        }
        assert!(live.exists(), "a running writer's temporary is kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

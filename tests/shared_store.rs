//! `cache.shared`: a result store that a team's processes read and write at once. Four processes
//! (this test binary run again, as `writer`) write the same keys with values of different
//! lengths and read them back while the others write; every value read must be one that some
//! writer wrote, whole.

use std::path::PathBuf;
use std::process::Command;

use aidiag::model::store::Store;

const KEYS: u64 = 200;
const ROUNDS: u64 = 5;

/// A value that says who wrote it and checks itself: "writer/key/round/" then a body whose
/// length differs per writer, then its length.
fn value(writer: u64, key: u64, round: u64) -> String {
    let body = "x".repeat((writer as usize + 1) * 700 + key as usize % 13);
    format!("{writer}/{key}/{round}/{body}/{}", body.len())
}

fn whole(key: u64, text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    parts.len() == 5
        && parts[1] == key.to_string()
        && parts[4].parse::<usize>().ok() == Some(parts[3].len())
        && parts[3].bytes().all(|b| b == b'x')
}

/// Not a test of its own: the body of one writer process (`AIDIAG_STORE_WRITER=dir,id`).
#[test]
#[ignore]
fn writer() {
    let Ok(spec) = std::env::var("AIDIAG_STORE_WRITER") else {
        return;
    };
    let (dir, id) = spec.rsplit_once(',').unwrap();
    let id: u64 = id.parse().unwrap();
    let mut torn = 0;
    for round in 0..ROUNDS {
        // A fresh store each round, so reads come from the files, not from memory.
        let store = Store::shared(Some(PathBuf::from(dir)), 100_000, true);
        for key in 0..KEYS {
            store.put(key, value(id, key, round));
            let other = (key * 7 + id) % KEYS;
            let reader = Store::shared(Some(PathBuf::from(dir)), 100_000, true);
            if let Some(text) = reader.get(other) {
                if !whole(other, &text) {
                    torn += 1;
                }
            }
        }
    }
    assert_eq!(torn, 0, "torn reads in writer {id}");
}

#[test]
fn four_processes_writing_at_once_leave_every_entry_whole() {
    let dir = std::env::temp_dir().join(format!("aidiag-shared-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", "writer", "--ignored", "--test-threads", "1"])
                .env("AIDIAG_STORE_WRITER", format!("{},{id}", dir.display()))
                .output_async()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }
    let store = Store::shared(Some(dir.clone()), 100_000, true);
    for key in 0..KEYS {
        let text = store.get(key).expect("every key written");
        assert!(
            whole(key, &text),
            "key {key}: {}",
            &text[..40.min(text.len())]
        );
        assert!(text.ends_with(&format!("/{}", text.split('/').nth(3).unwrap().len())));
        assert!(text.split('/').nth(2) == Some(&(ROUNDS - 1).to_string()));
    }
    // No temporary file left behind.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_none_or(|x| x != "json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

trait Spawn {
    fn output_async(&mut self) -> std::process::Child;
}

impl Spawn for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

//! Load: 10,000 quick edits to a 5,000-line document, sent without waiting, with a hover every
//! 100 edits. The final diagnostics must equal `aidiag check` on the final text, and every hover
//! must be answered; the hover latencies are printed, not asserted (CI runs a debug build): the
//! release figures (`cargo test --release --test load -- --nocapture`) are in docs/perf.md.

mod common;

#[path = "../benches/corpus.rs"]
mod corpus;

use std::time::{Duration, Instant};

use common::Client;
use serde_json::{json, Value};

const EDITS: usize = 10_000;

/// A fixed sequence of edits: type a character, delete one, break and restore braces, add a line.
fn edit(i: usize, text: &str, rng: &mut u64) -> (usize, usize, &'static str) {
    *rng = rng
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let r = (*rng >> 33) as usize;
    let boundary = |mut at: usize| {
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    let at = boundary(r % text.len());
    match i % 10 {
        0..=5 => (at, at, "x"),
        6 | 7 => (at, boundary((at + 1).min(text.len())), ""),
        8 => match text[at..].find('}') {
            Some(j) => (at + j, at + j + 1, ""),
            None => (at, at, "}"),
        },
        _ => (at, at, "\n"),
    }
}

fn position(text: &str, offset: usize) -> Value {
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let column: usize = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .encode_utf16()
        .count();
    json!({"line": line, "character": column})
}

#[test]
fn ten_thousand_edits_end_where_a_fresh_check_ends() {
    let mut text = corpus::file(&corpus::fixture_functions(), 5_000, 0);
    let uri = "file:///load.c";
    let mut client = Client::start();
    client.initialize(&["utf-16"]);
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "c", "version": 0, "text": text}}),
    );
    client.diagnostics(uri, 0);
    let mut rng = 7u64;
    let mut latencies = Vec::new();
    let started = Instant::now();
    for i in 0..EDITS {
        let (start, end, piece) = edit(i, &text, &mut rng);
        let change = json!({"range": {"start": position(&text, start), "end": position(&text, end)}, "text": piece});
        text.replace_range(start..end, piece);
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": i + 1}, "contentChanges": [change]}),
        );
        if i % 100 == 99 {
            let at = position(&text, text.len() / 2);
            let sent = Instant::now();
            let reply = client.request(
                "textDocument/hover",
                json!({"textDocument": {"uri": uri}, "position": at}),
            );
            assert!(reply.get("error").is_none(), "{reply}");
            latencies.push(sent.elapsed());
        }
    }
    let sent_all = started.elapsed();
    let published = client.diagnostics(uri, EDITS as i64);
    let settled = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{EDITS} edits sent in {sent_all:?}, final diagnostics after {settled:?}; hover p50 {:?} p99 {:?} max {:?}",
        at(0.5),
        at(0.99),
        latencies.last().unwrap()
    );
    assert!(*latencies.last().unwrap() < Duration::from_secs(20));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("load.c");
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(["check", "--no-model", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut expected: Vec<(String, u64, String)> = report["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["range"]["start"]["line"].as_u64().unwrap() - 1,
                f["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut served: Vec<(String, u64, String)> = published
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap().to_owned(),
                d["range"]["start"]["line"].as_u64().unwrap(),
                d["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    expected.sort();
    served.sort();
    assert_eq!(served.len(), expected.len());
    assert_eq!(served, expected);
    assert_eq!(client.shutdown(), 0);
}

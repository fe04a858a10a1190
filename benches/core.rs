//! Speed of the analysis core on a 5,000-line kernel-style file, against the targets of issue 2:
//! a one-character edit's reparse plus changed-function detection under 1 ms (median), and
//! checking every function from scratch under 50 ms.
//!
//! Run with `cargo bench --bench core`. `aidiag check` against cppcheck is timed by
//! `scripts/bench-check.sh`.

#[path = "corpus.rs"]
mod corpus;

use std::time::{Duration, Instant};

use aidiag::analysis::{functions, rules, syntax, CheckOptions};
use aidiag::server::document::Document;
use aidiag::server::line_index::{self, Encoding};
use tower_lsp::lsp_types::{Range, TextDocumentContentChangeEvent};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn p95(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() * 95 / 100]
}

fn main() {
    let text = corpus::file(&corpus::fixture_functions(), 5_000, 0);
    let lines = text.lines().count();
    let function_count = functions::function_nodes(&syntax::parse(&text, None).tree).len();
    println!(
        "file: {lines} lines, {} bytes, {function_count} functions",
        text.len()
    );

    // 1. One-character edits: insert a character inside a function body, then delete it again.
    let mut doc = Document::new(&text, 1);
    let anchors: Vec<usize> = text
        .match_indices("return")
        .map(|(i, _)| i)
        .step_by(7)
        .collect();
    let mut samples = Vec::new();
    let mut changed_total = 0;
    for round in 0..2_000 {
        let at = anchors[(round / 2) % anchors.len()];
        let version = round as i32 + 2;
        let (start, end, insert) = if round % 2 == 0 {
            (at, at, "x")
        } else {
            (at, at + 1, "")
        };
        let range = Range::new(
            line_index::position(&doc.rope, start, Encoding::Utf16),
            line_index::position(&doc.rope, end, Encoding::Utf16),
        );
        let change = TextDocumentContentChangeEvent {
            range: Some(range),
            range_length: None,
            text: insert.to_owned(),
        };
        let t = Instant::now();
        let changed = doc.apply(&[change], version, Encoding::Utf16);
        samples.push(t.elapsed());
        changed_total += changed.len();
    }
    assert_eq!(doc.rope.to_string(), text, "edits undo themselves");
    let edit_median = median(samples.clone());
    println!(
        "one-character edit, reparse + changed functions: median {:.3} ms, p95 {:.3} ms (target < 1 ms median; ratio {:.2}); {:.2} functions changed per edit",
        edit_median.as_secs_f64() * 1e3,
        p95(samples).as_secs_f64() * 1e3,
        edit_median.as_secs_f64() / 1e-3,
        changed_total as f64 / 2_000.0
    );

    // 2. Checking every function from scratch (no cache).
    let parse = syntax::parse(&text, None);
    let nodes = functions::function_nodes(&parse.tree);
    let mut samples = Vec::new();
    let mut findings = 0;
    for _ in 0..30 {
        let t = Instant::now();
        findings = nodes
            .iter()
            .map(|n| rules::check_function(*n, &text, CheckOptions::default()).len())
            .sum();
        samples.push(t.elapsed());
    }
    let full = median(samples);
    println!(
        "check all {function_count} functions from scratch: median {:.2} ms (target < 50 ms; ratio {:.2}); {findings} findings",
        full.as_secs_f64() * 1e3,
        full.as_secs_f64() / 50e-3
    );

    // 3. The same with fixes verified, as `aidiag check` does.
    let t = Instant::now();
    let with_fixes: usize = nodes
        .iter()
        .map(|n| rules::check_function(*n, &text, CheckOptions { fixes: true }).len())
        .sum();
    println!(
        "check all functions with fixes verified: {:.2} ms ({with_fixes} findings)",
        t.elapsed().as_secs_f64() * 1e3
    );
}

//! End to end through the real server over stdio, with the default model judging (issue 3's
//! "function edited -> model verdict published", issue 6's targets):
//! - `didChange` of one 30-line function in a 5,000-line file -> its diagnostics published
//!   (rules), and -> published again with the model's verdict (`modelVerdicts: "annotate"`;
//!   each edit changes the function, so no stored verdict answers);
//! - hover round trips while the model is busy with that verdict;
//! - the server's peak resident memory (VmHWM).
//!
//! `cargo bench --bench lsp_latency -- [--edits N] [--first-line]`: each edit changes the
//! allocation size on the function's 10th line, or with `--first-line` the parameter's name on
//! its first line (the worst case: all the code after the system turn is new). Needs the default model
//! (`scripts/fetch-model.sh`). The debounce is the default 150 ms, and it is part of the latency.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "corpus.rs"]
mod corpus;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const URI: &str = "file:///tmp/aidiag-bench/latency.c";

/// A 30-line driver function with one leak on an error path (a judged rule's finding).
/// The name carries the process id, so that no verdict stored by an earlier run answers.
fn target(round: usize) -> String {
    format!(
        "static int bench_target_probe_{pid}(struct platform_device *pdev)
{{
\tstruct bench_priv *priv;
\tchar *buf;
\tint ret;

\tpriv = devm_kzalloc(&pdev->dev, sizeof(*priv), GFP_KERNEL);
\tif (!priv)
\t\treturn -ENOMEM;
\tbuf = kmalloc({size}, GFP_KERNEL);
\tif (!buf)
\t\treturn -ENOMEM;
\tret = bench_read_id(priv, buf);
\tif (ret < 0)
\t\treturn ret;
\tpriv->id = buf[0];
\tpriv->rev = buf[1];
\tret = bench_setup_irq(priv);
\tif (ret) {{
\t\tkfree(buf);
\t\treturn ret;
\t}}
\tplatform_set_drvdata(pdev, priv);
\tdev_info(&pdev->dev, \"id %d rev %d\\n\", priv->id, priv->rev);
\tkfree(buf);
\treturn 0;
}}
",
        size = 64 + round,
        pid = std::process::id()
    )
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let edits: usize = args
        .iter()
        .position(|a| a == "--edits")
        .and_then(|i| args.get(i + 1))
        .map_or(10, |n| n.parse().expect("--edits N"));
    let first_line = args.iter().any(|a| a == "--first-line");

    // The rest of the file: fixture functions without findings of the judged rules, so that the
    // model's queue holds only the function being edited.
    let judged = [
        "leak-on-error",
        "lock-imbalance",
        "use-after-free",
        "double-free",
    ];
    let quiet: Vec<String> = corpus::fixture_functions()
        .into_iter()
        .filter(|f| {
            aidiag::analysis::check_text(f, Default::default())
                .iter()
                .all(|x| !judged.contains(&x.rule))
        })
        .collect();
    let rest = corpus::file(&quiet, 4970, 1);
    let text = |round: usize| format!("{rest}{}", target(round));
    let first_target_line = rest.lines().count() as u64;

    let mut client = common::Client::start();
    client.initialize_with_capabilities(
        json!({"general": {"positionEncodings": ["utf-16"]}, "window": {"workDoneProgress": true}}),
        json!({"modelVerdicts": "annotate"}),
    );
    let answer_progress = |client: &mut common::Client| {
        while let Some(create) = client.take(|m| m["method"] == "window/workDoneProgress/create") {
            client.respond(&create["id"], Value::Null);
        }
    };
    let judged_in = |m: &Value, version: i64| {
        m["method"] == "textDocument/publishDiagnostics"
            && m["params"]["version"] == version
            && m["params"]["diagnostics"].as_array().is_some_and(|ds| {
                ds.iter().any(|d| {
                    d["message"]
                        .as_str()
                        .is_some_and(|t| t.contains("judged this report"))
                })
            })
    };

    let opened = Instant::now();
    let initial = text(0);
    let lines = initial.lines().count();
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": URI, "languageId": "c", "version": 1, "text": initial}}),
    );
    // The model loads, then judges the target once; wait for that before timing edits.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        answer_progress(&mut client);
        if client.take(|m| judged_in(m, 1)).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no verdict within 120 s of opening"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let warm = opened.elapsed();

    let (mut to_rules, mut to_verdict, mut hovers) = (Vec::new(), Vec::new(), Vec::new());
    // The `kmalloc(64 + round, ...)` line of the target, or its first line.
    let (size_line, column) = if first_line {
        let header = target(0);
        let header = header.lines().next().unwrap();
        (
            first_target_line,
            header.find("*pdev").unwrap() as u64 + "*pdev".len() as u64,
        )
    } else {
        (first_target_line + 9, "\tbuf = kmalloc(".len() as u64)
    };
    for round in 1..=edits {
        let version = round as i64 + 1;
        // `*pdev` -> `*pdev1` -> `*pdev2` ...: the parameter renamed, the body unchanged.
        let (old, new) = if first_line {
            let old = if round == 1 {
                String::new()
            } else {
                format!("{}", round - 1)
            };
            (old, format!("{round}"))
        } else {
            (format!("{}", 64 + round - 1), format!("{}", 64 + round))
        };
        let started = Instant::now();
        client.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": URI, "version": version},
                   "contentChanges": [{"range": {"start": {"line": size_line, "character": column},
                                                 "end": {"line": size_line, "character": column + old.len() as u64}},
                                       "text": new}]}),
        );
        let mut rules_at = None;
        loop {
            answer_progress(&mut client);
            if rules_at.is_none()
                && client
                    .take(|m| {
                        m["method"] == "textDocument/publishDiagnostics"
                            && m["params"]["version"] == version
                            && !judged_in(m, version)
                    })
                    .is_some()
            {
                rules_at = Some(started.elapsed());
            }
            if client.take(|m| judged_in(m, version)).is_some() {
                to_verdict.push(started.elapsed());
                break;
            }
            // A hover elsewhere in the file while the model works.
            let asked = Instant::now();
            let reply = client.request(
                "textDocument/hover",
                json!({"textDocument": {"uri": URI}, "position": {"line": 20, "character": 4}}),
            );
            assert!(reply.get("error").is_none(), "{reply}");
            hovers.push(asked.elapsed());
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no verdict within 60 s of edit {round}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        to_rules.extend(rules_at);
    }
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", client.pid())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map_or("unknown", |l| l[name.len()..].trim())
            .to_owned()
    };
    let (peak, resident) = (field("VmHWM:"), field("VmRSS:"));
    assert_eq!(client.shutdown(), 0);

    println!(
        "file: {lines} lines; model loaded and first verdict {:.2} s after didOpen",
        warm.as_secs_f64()
    );
    println!(
        "didChange -> rules published ({} edits): p50 {:.1} ms, p95 {:.1} ms (debounce 150 ms included)",
        to_rules.len(),
        ms(percentile(&to_rules, 0.5)),
        ms(percentile(&to_rules, 0.95))
    );
    println!(
        "didChange -> verdict published ({edits} edits): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms; targets p50 < 700, p95 < 1500",
        ms(percentile(&to_verdict, 0.5)),
        ms(percentile(&to_verdict, 0.95)),
        ms(percentile(&to_verdict, 1.0))
    );
    println!(
        "hover while the model works ({} requests): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; target p99 < 10",
        hovers.len(),
        ms(percentile(&hovers, 0.5)),
        ms(percentile(&hovers, 0.99)),
        ms(percentile(&hovers, 1.0))
    );
    println!("server memory: peak {peak} (target < 400 MB), resident at the end {resident}");
}

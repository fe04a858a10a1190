//! Walks `fixtures/rules/<rule-id>/{bad.c,good.c}`: every annotated finding in `bad.c` must be
//! reported exactly (rule, line and the text of its range), nothing else may be reported there,
//! and nothing at all may be reported on `good.c`.
//!
//! An annotation is a comment line under the code: `// ^ rule-id: exact text of the range`
//! for a warning or error, `// ^ rule-id hint: exact text` for a hint or information. `good.c`
//! may hold hint annotations (a size product with nothing large in sight is a hint), never a
//! warning.

use std::collections::BTreeMap;
use std::path::Path;

use aidiag::analysis::{self, syntax::LineIndex, CheckOptions, Severity};

type Key = (usize, String, String);

fn expectations(text: &str) -> Vec<Key> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("// ^ ") else {
            continue;
        };
        let (rule, snippet) = rest
            .split_once(": ")
            .expect("annotation is `// ^ rule-id: text`");
        let mut target = i;
        // Several annotations may stack under one line of code.
        while text
            .lines()
            .nth(target - 1)
            .unwrap()
            .trim_start()
            .starts_with("// ^ ")
        {
            target -= 1;
        }
        out.push((target, rule.to_owned(), snippet.to_owned()));
    }
    out
}

fn actual(text: &str) -> Vec<Key> {
    let index = LineIndex::new(text);
    analysis::check_text(text, CheckOptions::default())
        .into_iter()
        .map(|f| {
            let line = index.line(f.range.start) + 1;
            let rule = if f.severity >= Severity::Warning {
                f.rule.to_owned()
            } else {
                format!("{} hint", f.rule)
            };
            (line, rule, text[f.range.start..f.range.end].to_owned())
        })
        .collect()
}

fn count(keys: Vec<Key>) -> BTreeMap<Key, usize> {
    let mut map = BTreeMap::new();
    for key in keys {
        *map.entry(key).or_default() += 1;
    }
    map
}

#[test]
fn rule_fixtures_have_no_noisy_or_missing_findings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules");
    let mut problems = Vec::new();
    let mut rules_seen = Vec::new();
    for rule in aidiag::analysis::rules::RULES {
        let dir = root.join(rule.id);
        let bad = std::fs::read_to_string(dir.join("bad.c"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let good = std::fs::read_to_string(dir.join("good.c"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let expected = count(expectations(&bad));
        assert!(
            expected.keys().any(|(_, r, _)| r == rule.id),
            "{}/bad.c has no expectation for its own rule",
            rule.id
        );
        let found = count(actual(&bad));
        for (key, n) in &expected {
            let got = found.get(key).copied().unwrap_or(0);
            if got < *n {
                problems.push(format!(
                    "missing: {}/bad.c:{} {} `{}`",
                    rule.id, key.0, key.1, key.2
                ));
            }
        }
        for (key, n) in &found {
            if expected.get(key).copied().unwrap_or(0) < *n {
                problems.push(format!(
                    "noisy: {}/bad.c:{} {} `{}`",
                    rule.id, key.0, key.1, key.2
                ));
            }
        }
        let hints = count(expectations(&good));
        if let Some(key) = hints.keys().find(|k| !k.1.ends_with(" hint")) {
            problems.push(format!(
                "{}/good.c:{} expects a warning: {} `{}`",
                rule.id, key.0, key.1, key.2
            ));
        }
        let found = count(actual(&good));
        for (key, n) in &found {
            if hints.get(key).copied().unwrap_or(0) < *n {
                problems.push(format!(
                    "noisy: {}/good.c:{} {} `{}`",
                    rule.id, key.0, key.1, key.2
                ));
            }
        }
        for (key, n) in &hints {
            if found.get(key).copied().unwrap_or(0) < *n {
                problems.push(format!(
                    "missing: {}/good.c:{} {} `{}`",
                    rule.id, key.0, key.1, key.2
                ));
            }
        }
        rules_seen.push(rule.id);
    }
    assert!(
        problems.is_empty(),
        "rule fixtures disagree with the rules:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        rules_seen.len(),
        std::fs::read_dir(&root).unwrap().count(),
        "a fixture folder has no rule"
    );
}

#[test]
fn every_bad_fixture_finding_has_a_verified_fix_or_suppression() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rules");
    for rule in aidiag::analysis::rules::RULES {
        let bad = std::fs::read_to_string(root.join(rule.id).join("bad.c")).unwrap();
        for finding in analysis::check_text(&bad, CheckOptions { fixes: true }) {
            assert!(
                finding
                    .fixes
                    .iter()
                    .any(|f| f.title.starts_with("Suppress")),
                "{}: the suppression fix did not verify for {:?}",
                rule.id,
                finding.range
            );
        }
    }
}

//! `aidiag eval --judge SET.jsonl`: how well a model's verdicts separate real findings from false
//! ones on real code (the judgement set, `scripts/judgement-set.py materialize`). Each case is a
//! finding as aidiag reported it (rule, line, message, evidence, with the file's line numbers)
//! in a C file on disk, labeled real or false by a reviewer. The model judges each, with the
//! prompt the CLI and the server use; the report gives the area under the ROC curve of
//! p(correct) and what the verdict policies would keep and drop.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::analysis::{functions, syntax};
use crate::model::judge;
use crate::model::FindingText;

#[derive(Deserialize)]
struct Evidence {
    line: usize,
    message: String,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    label: String,
    source: String,
    rule: String,
    /// 1-based line of the finding in `path`.
    line: usize,
    message: String,
    evidence: Vec<Evidence>,
    path: PathBuf,
}

/// What the model is shown besides the function.
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub enum Context {
    /// The function alone.
    None,
    /// The comment block right above the function, then the function.
    Comment,
    /// The comment and the function, then what the file says around it
    /// (`analysis::context`): its callers, the callees where the finding is, the other
    /// functions that release the lock.
    Related,
}

#[derive(Serialize)]
struct Judged {
    id: String,
    rule: String,
    real: bool,
    source: String,
    /// The model's probability that the report is correct; `None` when it abstained or was not
    /// asked (the function was not found).
    p_correct: Option<f32>,
}

#[derive(Serialize)]
struct Report {
    model: String,
    context: String,
    cases: usize,
    real: usize,
    false_: usize,
    abstained: usize,
    auc: f64,
    /// The AUC within each rule's cases (the set's rules are not balanced: most false cases are
    /// lock-imbalance, most real ones use-after-free, so a model could score by rule alone).
    /// `None` where the rule's cases are all real or all false.
    auc_by_rule: Vec<(String, usize, Option<f64>)>,
    /// (threshold on p(wrong), real findings kept, false findings demoted)
    policies: Vec<(f32, usize, usize)>,
    seconds: f64,
    judged: Vec<Judged>,
}

/// Area under the ROC curve of `score` for telling real (true) from false: the probability that
/// a real case scores above a false one, ties counting half.
pub fn auc(scored: &[(bool, f64)]) -> f64 {
    let (mut pairs, mut wins) = (0.0, 0.0);
    for &(real, a) in scored.iter().filter(|s| s.0) {
        let _ = real;
        for &(_, b) in scored.iter().filter(|s| !s.0) {
            pairs += 1.0;
            wins += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    if pairs == 0.0 {
        0.5
    } else {
        wins / pairs
    }
}

/// Rewrites the file's line numbers in `text` ("line 812") as the function's ("line 7"), as the
/// verdict prompt numbers them.
fn relative_lines(text: &str, first_line: usize) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("line ") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) if n > first_line => out.push_str(&(n - first_line).to_string()),
            _ => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Runs the judgement set; returns the exit code (2 when the set cannot be read or the model
/// cannot be used).
pub fn run(
    set: &std::path::Path,
    context: Context,
    question: judge::Question,
    json: bool,
    options: &super::model::ModelOptions,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let text = match std::fs::read_to_string(set) {
        Ok(text) => text,
        Err(e) => {
            let _ = writeln!(stderr, "aidiag: error: {}: {e}", set.display());
            return 2;
        }
    };
    let mut cases = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<Case>(line) {
            Ok(case) => cases.push(case),
            Err(e) => {
                let _ = writeln!(stderr, "aidiag: error: {}:{}: {e}", set.display(), n + 1);
                return 2;
            }
        }
    }
    let path = match &options.endpoint {
        Some(_) => None,
        None => match crate::model::resolve(options.path.as_deref()) {
            Some((path, _)) => Some(path),
            None => {
                let _ = writeln!(stderr, "aidiag: error: no model: pass --model PATH");
                return 2;
            }
        },
    };
    // Every verdict is computed: the store's keys do not tell the two contexts apart.
    let options = super::model::ModelOptions {
        no_cache: true,
        ..options.clone()
    };
    let Some((runtime, service)) = super::model::open(&options, path, stderr) else {
        return 2;
    };
    let started = std::time::Instant::now();
    let mut judged = Vec::new();
    for case in &cases {
        let p_correct = match super::read_source(&case.path) {
            Ok((code, _)) => {
                let parse = syntax::parse(&code, None);
                let index = functions::FunctionIndex::build(&parse.tree, code.as_str());
                let lines = syntax::LineIndex::new(&code);
                let offset = lines.line_start(case.line.saturating_sub(1));
                match index.at(offset) {
                    Some(function) => {
                        let start = match context {
                            Context::Comment | Context::Related => {
                                functions::leading_comment(&code, function.range.start)
                                    .unwrap_or(function.range.start)
                            }
                            Context::None => function.range.start,
                        };
                        // 1-based line of the code's first line, minus one: what "line N" loses.
                        let first = lines.line(start);
                        let rule = judge::JUDGED_RULES
                            .iter()
                            .find(|r| **r == case.rule)
                            .copied()
                            .unwrap_or("leak-on-error");
                        let text = FindingText {
                            rule,
                            message: relative_lines(&case.message, first),
                            evidence: case
                                .evidence
                                .iter()
                                .map(|e| {
                                    format!(
                                        "line {}: {}",
                                        e.line.saturating_sub(first),
                                        relative_lines(&e.message, first)
                                    )
                                })
                                .collect(),
                            function: code[start..function.range.end].to_owned(),
                            context: match context {
                                Context::Related => {
                                    let mut at: Vec<usize> = case
                                        .evidence
                                        .iter()
                                        .map(|e| e.line.saturating_sub(1))
                                        .collect();
                                    at.push(case.line.saturating_sub(1));
                                    crate::analysis::context::for_finding(
                                        &parse.tree,
                                        &code,
                                        &index,
                                        function,
                                        &at,
                                        crate::analysis::context::subject(&case.message),
                                        case.rule == "lock-imbalance",
                                    )
                                }
                                _ => String::new(),
                            },
                        };
                        runtime.block_on(service.ask(&text, question)).map(|v| {
                            if v.real {
                                v.confidence
                            } else {
                                1.0 - v.confidence
                            }
                        })
                    }
                    None => {
                        let _ = writeln!(
                            stderr,
                            "aidiag: warning: {}: no function at {}:{}",
                            case.id,
                            case.path.display(),
                            case.line
                        );
                        None
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(stderr, "aidiag: warning: {}: {e}", case.id);
                None
            }
        };
        judged.push(Judged {
            id: case.id.clone(),
            rule: case.rule.clone(),
            real: case.label == "real",
            source: case.source.clone(),
            p_correct,
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    let scored: Vec<(bool, f64)> = judged
        .iter()
        .map(|j| (j.real, j.p_correct.map_or(0.5, f64::from)))
        .collect();
    let real = judged.iter().filter(|j| j.real).count();
    let mut rules: Vec<String> = judged.iter().map(|j| j.rule.clone()).collect();
    rules.sort();
    rules.dedup();
    let auc_by_rule = rules
        .into_iter()
        .map(|rule| {
            let scored: Vec<(bool, f64)> = judged
                .iter()
                .filter(|j| j.rule == rule)
                .map(|j| (j.real, j.p_correct.map_or(0.5, f64::from)))
                .collect();
            let both = scored.iter().any(|s| s.0) && scored.iter().any(|s| !s.0);
            (rule, scored.len(), both.then(|| auc(&scored)))
        })
        .collect();
    let policies = [0.6f32, 0.7, judge::REJECT_CONFIDENCE, 0.9]
        .iter()
        .map(|&t| {
            let demoted = |j: &&Judged| j.p_correct.is_some_and(|p| 1.0 - p >= t);
            let kept = judged.iter().filter(|j| j.real && !demoted(j)).count();
            let dropped = judged.iter().filter(|j| !j.real && demoted(j)).count();
            (t, kept, dropped)
        })
        .collect();
    let report = Report {
        model: service.backend.name().to_owned(),
        context: format!("{context:?}, question {question:?}").to_lowercase(),
        cases: judged.len(),
        real,
        false_: judged.len() - real,
        abstained: judged.iter().filter(|j| j.p_correct.is_none()).count(),
        auc: auc(&scored),
        auc_by_rule,
        policies,
        seconds,
        judged,
    };
    let written = if json {
        serde_json::to_writer_pretty(&mut *stdout, &report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(stdout))
    } else {
        text_report(&report, stdout)
    };
    if written.is_err() {
        return 2;
    }
    0
}

fn text_report(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "judgement set: {} cases ({} real, {} false); model {}; context: {}",
        r.cases, r.real, r.false_, r.model, r.context
    )?;
    writeln!(
        out,
        "AUC of p(correct): {:.3}   ({} abstained, scored 0.5; {:.1} s, {:.2} s a verdict)",
        r.auc,
        r.abstained,
        r.seconds,
        r.seconds / r.cases.max(1) as f64
    )?;
    for (rule, n, auc) in &r.auc_by_rule {
        match auc {
            Some(auc) => writeln!(out, "  {rule}: AUC {auc:.3} over {n} cases")?,
            None => writeln!(out, "  {rule}: {n} cases, all of one label")?,
        }
    }
    writeln!(out, "demote (or drop) when p(wrong) >= t:")?;
    for (t, kept, dropped) in &r.policies {
        writeln!(
            out,
            "  t = {t:.2}: keeps {kept}/{} real ({:.0}%), demotes {dropped}/{} false ({:.0}%)",
            r.real,
            100.0 * *kept as f64 / r.real.max(1) as f64,
            r.false_,
            100.0 * *dropped as f64 / r.false_.max(1) as f64
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs_and_ties() {
        assert_eq!(auc(&[(true, 0.9), (false, 0.1)]), 1.0);
        assert_eq!(auc(&[(true, 0.1), (false, 0.9)]), 0.0);
        assert_eq!(auc(&[(true, 0.5), (false, 0.5)]), 0.5);
        assert_eq!(
            auc(&[(true, 0.8), (true, 0.4), (false, 0.6), (false, 0.2)]),
            0.75
        );
    }

    #[test]
    fn file_lines_become_the_functions_lines() {
        assert_eq!(
            relative_lines("`p` allocated at line 812 leaks; see line 3", 800),
            "`p` allocated at line 12 leaks; see line 3"
        );
    }
}

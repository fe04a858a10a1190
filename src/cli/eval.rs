//! `aidiag eval`: precision and recall on a labeled corpus, measured the same way every time.
//!
//! A corpus is a directory of cases; one case is `NAME.c` with `NAME.json` =
//! `{"clean": false, "class": "leak", "lines": [19], "note": "..."}`. A warning (or error)
//! within one line of a labeled line of a buggy case is a hit; every other warning is a false
//! alarm. Precision is hits over all warnings, recall is buggy cases with a hit over buggy cases,
//! and a clean case with any warning counts as flagged. Information and hint findings do not
//! count: they are not shown as warnings.
//!
//! The same scoring reads other tools' warnings (`--external FILE --name TOOL`, a JSON list of
//! `{"file": "NAME.c", "line": N, "message": "..."}`), so peers are scored by the same code.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis::{syntax::LineIndex, Severity};

/// Bug classes that aidiag's rules are written to find (the others need the model or are out
/// of scope); "covered" rows are computed over these.
pub const RULE_CLASSES: &[&str] = &[
    "unchecked-alloc",
    "leak",
    "refcount",
    "lock-imbalance",
    "use-after-free",
    "double-free",
    "integer-overflow",
    "unchecked-return",
    "off-by-one",
    "unsigned-compare",
    "assignment-in-condition",
    "sizeof-pointer",
];

#[derive(Deserialize)]
struct Label {
    clean: bool,
    class: String,
    #[serde(default)]
    lines: Vec<usize>,
}

/// One reported warning, from aidiag or from a peer.
#[derive(Clone, Deserialize, Serialize)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    #[serde(default)]
    pub message: String,
}

#[derive(Serialize)]
struct CaseResult {
    name: String,
    class: String,
    clean: bool,
    lines: Vec<usize>,
    warnings: Vec<Warning>,
    hit: bool,
}

#[derive(Default, Serialize, Clone, Copy)]
pub struct Row {
    pub bugs: usize,
    pub found: usize,
    pub hits: usize,
    pub false_alarms: usize,
    pub clean: usize,
    pub clean_flagged: usize,
}

impl Row {
    fn add(&mut self, other: &Row) {
        self.bugs += other.bugs;
        self.found += other.found;
        self.hits += other.hits;
        self.false_alarms += other.false_alarms;
        self.clean += other.clean;
        self.clean_flagged += other.clean_flagged;
    }
    /// Hits over all warnings; 1.0 when nothing was reported (no false alarm was made).
    pub fn precision(&self) -> f64 {
        let shown = self.hits + self.false_alarms;
        if shown == 0 {
            1.0
        } else {
            self.hits as f64 / shown as f64
        }
    }
    pub fn recall(&self) -> f64 {
        ratio(self.found, self.bugs)
    }
    pub fn clean_flagged_share(&self) -> f64 {
        ratio(self.clean_flagged, self.clean)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The scored corpus.
#[derive(Serialize)]
pub struct Report {
    pub engine: String,
    pub corpus: String,
    pub classes: BTreeMap<String, Row>,
    pub overall: Row,
    /// Over the classes in `RULE_CLASSES` only.
    pub covered: Row,
    cases: Vec<CaseResult>,
}

/// What `aidiag eval` was asked to do.
pub struct EvalSettings {
    pub corpus: PathBuf,
    pub format: EvalFormat,
    /// Score this tool's warnings instead of running aidiag: (name, JSON file).
    pub external: Option<(String, PathBuf)>,
    pub model: super::model::ModelOptions,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum EvalFormat {
    Text,
    Json,
}

/// Runs `aidiag eval`; returns the exit code (0, or 2 when the corpus cannot be read).
pub fn eval(settings: &EvalSettings, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    match run(settings, stderr) {
        Ok(report) => {
            let written = match settings.format {
                EvalFormat::Json => serde_json::to_writer_pretty(&mut *stdout, &report)
                    .map_err(std::io::Error::other)
                    .and_then(|_| writeln!(stdout)),
                EvalFormat::Text => stdout.write_all(text(&report).as_bytes()),
            };
            if let Err(error) = written {
                let _ = writeln!(stderr, "aidiag: error: cannot write the report: {error}");
                return 2;
            }
            0
        }
        Err(error) => {
            let _ = writeln!(stderr, "aidiag: error: {error}");
            2
        }
    }
}

/// The cases of a corpus: (name, path of the .c file, label), sorted by name.
fn cases(corpus: &Path) -> Result<Vec<(String, PathBuf, Label)>, String> {
    let entries = std::fs::read_dir(corpus)
        .map_err(|e| format!("cannot read corpus {}: {e}", corpus.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let source = path.with_extension("c");
        if !source.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let label: Label = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a case label: {e}", path.display()))?;
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, source, label));
    }
    if out.is_empty() {
        return Err(format!(
            "corpus {} has no cases (NAME.c with NAME.json)",
            corpus.display()
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn run(settings: &EvalSettings, stderr: &mut dyn Write) -> Result<Report, String> {
    let cases = cases(&settings.corpus)?;
    let (engine, warnings) = match &settings.external {
        Some((name, file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let warnings: Vec<Warning> = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not a list of warnings: {e}", file.display()))?;
            (name.clone(), warnings)
        }
        None => aidiag_warnings(&cases, &settings.model, stderr),
    };
    let mut by_file: BTreeMap<&str, Vec<&Warning>> = BTreeMap::new();
    for warning in &warnings {
        by_file.entry(&warning.file).or_default().push(warning);
    }
    let mut classes: BTreeMap<String, Row> = BTreeMap::new();
    let mut results = Vec::new();
    for (name, _, label) in &cases {
        let found: Vec<&Warning> = by_file.get(name.as_str()).cloned().unwrap_or_default();
        let near = |w: &&&Warning| label.lines.iter().any(|&l| w.line.abs_diff(l) <= 1);
        let hits = if label.clean {
            0
        } else {
            found.iter().filter(near).count()
        };
        let row = classes.entry(label.class.clone()).or_default();
        row.hits += hits;
        row.false_alarms += found.len() - hits;
        if label.clean {
            row.clean += 1;
            row.clean_flagged += usize::from(!found.is_empty());
        } else {
            row.bugs += 1;
            row.found += usize::from(hits > 0);
        }
        results.push(CaseResult {
            name: name.clone(),
            class: label.class.clone(),
            clean: label.clean,
            lines: label.lines.clone(),
            warnings: found.into_iter().cloned().collect(),
            hit: hits > 0,
        });
    }
    let mut overall = Row::default();
    let mut covered = Row::default();
    for (class, row) in &classes {
        overall.add(row);
        if RULE_CLASSES.contains(&class.as_str()) {
            covered.add(row);
        }
    }
    Ok(Report {
        engine,
        corpus: settings.corpus.display().to_string(),
        classes,
        overall,
        covered,
        cases: results,
    })
}

/// aidiag's own warnings on every case, and the engine's name (which says what the model did).
fn aidiag_warnings(
    cases: &[(String, PathBuf, Label)],
    model: &super::model::ModelOptions,
    stderr: &mut dyn Write,
) -> (String, Vec<Warning>) {
    let mut reports = Vec::new();
    for (name, path, _) in cases {
        match super::read_source(path) {
            Ok((text, _)) => {
                // The rules never read these names, but the model would: Juliet's function
                // names give the answer away (`CWE..._bad`, `goodB2G`, `helperBad`).
                let text = neutral_names(&text);
                let findings =
                    crate::analysis::check_text(&text, crate::analysis::CheckOptions::default());
                let path = super::display_path(path);
                reports.push((
                    name,
                    super::FileReport {
                        path,
                        text,
                        findings,
                    },
                ));
            }
            Err(error) => {
                let _ = writeln!(stderr, "aidiag: error: {}: {error}", path.display());
            }
        }
    }
    let (names, mut reports): (Vec<_>, Vec<_>) = reports.into_iter().unzip();
    let engine = match super::model::apply(model, &mut reports, stderr) {
        Some(run) => format!(
            "aidiag (rules + {}: verdicts {:?}, {} judged; {} functions reviewed, {} model findings at information; {} model calls)",
            run.name, run.policy, run.judged, run.reviewed, run.model_findings, run.calls
        ),
        None => "aidiag (rules)".to_owned(),
    };
    let mut warnings = Vec::new();
    for (name, report) in names.into_iter().zip(reports) {
        {
            {
                let lines = LineIndex::new(&report.text);
                for finding in report.findings {
                    if finding.severity >= Severity::Warning {
                        warnings.push(Warning {
                            file: name.clone(),
                            line: lines.line(finding.range.start) + 1,
                            message: format!(
                                "[{}] {}",
                                finding.rule,
                                finding.message.render(&|o| lines.line(o))
                            ),
                        });
                    }
                }
            }
        }
    }
    (engine, warnings)
}

/// `text` with "bad" and "good" replaced (in any case) by words of the same length, so that a
/// model cannot read a case's label from its names, and every offset and line stays the same.
pub fn neutral_names(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let replaced = [("bad", "fun"), ("good", "test")].iter().find(|(word, _)| {
            rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word)
        });
        match replaced {
            Some((word, neutral)) => {
                // Keep the case pattern: `Bad` becomes `Fun`, `BAD` becomes `FUN`.
                for (original, new) in rest[..word.len()].chars().zip(neutral.chars()) {
                    out.push(if original.is_ascii_uppercase() {
                        new.to_ascii_uppercase()
                    } else {
                        new
                    });
                }
                i += word.len();
            }
            None => {
                let c = rest.chars().next().expect("not at the end");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

fn text(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "engine: {}\ncorpus: {}\n",
        report.engine, report.corpus
    );
    let _ = writeln!(
        out,
        "{:<24} {:>5} {:>6} {:>5} {:>6} {:>6} {:>8}",
        "class", "bugs", "found", "hits", "false", "clean", "flagged"
    );
    let row = |out: &mut String, name: &str, r: &Row| {
        let _ = writeln!(
            out,
            "{:<24} {:>5} {:>6} {:>5} {:>6} {:>6} {:>8}",
            name, r.bugs, r.found, r.hits, r.false_alarms, r.clean, r.clean_flagged
        );
    };
    for (class, r) in &report.classes {
        let mark = if RULE_CLASSES.contains(&class.as_str()) {
            ""
        } else {
            " (*)"
        };
        row(&mut out, &format!("{class}{mark}"), r);
    }
    row(&mut out, "all", &report.overall);
    let _ = writeln!(out, "(*) no rule is written for this class\n");
    for (name, r) in [
        ("all classes", &report.overall),
        ("rule classes", &report.covered),
    ] {
        let _ = writeln!(
            out,
            "{name:<13} precision {:.2} ({} of {} warnings)  recall {:.2} ({} of {} bugs)  clean flagged {:.2} ({} of {})",
            r.precision(),
            r.hits,
            r.hits + r.false_alarms,
            r.recall(),
            r.found,
            r.bugs,
            r.clean_flagged_share(),
            r.clean_flagged,
            r.clean
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_that_give_the_label_away_are_neutralized_in_place() {
        let text = "void CWE415_bad()\n{ helperBad(goodG2B, BADSOURCE); }\n";
        let neutral = super::neutral_names(text);
        assert_eq!(
            neutral,
            "void CWE415_fun()\n{ helperFun(testG2B, FUNSOURCE); }\n"
        );
        assert_eq!(neutral.len(), text.len());
    }
}

//! The three report formats of `aidiag check`: compiler-style text, JSON and SARIF 2.1.0.

use std::io::{self, Write};

use serde_json::{json, Value};

use super::FileReport;
use crate::analysis::syntax::LineIndex;
use crate::analysis::{rules, ByteRange, Finding, Fix, Severity};

/// The output format of `aidiag check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    /// A review reply to a patch (`check --patch` only): the diff quoted, findings under it.
    Reply,
}

pub fn write(
    format: Format,
    reports: &[FileReport],
    errors: &[String],
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Text | Format::Reply => text(reports, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &json_report(reports))?;
            writeln!(out)
        }
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif_report(reports, errors))?;
            writeln!(out)
        }
    }
}

/// A file's text with its line index, to turn byte offsets into lines and columns.
struct Located<'a> {
    text: &'a str,
    index: LineIndex,
}

impl<'a> Located<'a> {
    fn new(text: &'a str) -> Self {
        Located {
            text,
            index: LineIndex::new(text),
        }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.index.line(offset)
    }

    /// 1-based line and 1-based byte column.
    fn position(&self, offset: usize) -> (usize, usize) {
        let (line, col) = self.index.line_col(offset);
        (line + 1, col + 1)
    }

    /// 1-based line and 1-based column in Unicode code points (SARIF's `unicodeCodePoints`).
    fn code_point_position(&self, offset: usize) -> (usize, usize) {
        let (line, _) = self.index.line_col(offset);
        let start = self.index.line_start(line);
        let prefix = self.text.get(start..offset).unwrap_or("");
        (line + 1, prefix.chars().count() + 1)
    }

    fn line_text(&self, line: usize) -> &'a str {
        let start = self.index.line_start(line);
        let rest = &self.text[start..];
        &rest[..rest.find(['\n', '\r']).unwrap_or(rest.len())]
    }

    fn render(&self, message: &crate::analysis::Message) -> String {
        message.render(&|o| self.line_of(o))
    }
}

fn text(reports: &[FileReport], out: &mut dyn Write) -> io::Result<()> {
    for report in reports {
        let at = Located::new(&report.text);
        for finding in &report.findings {
            let (line, col) = at.position(finding.range.start);
            writeln!(
                out,
                "{}:{line}:{col}: {}: {} [{}]",
                report.path,
                finding.severity.as_str(),
                at.render(&finding.message),
                finding.rule
            )?;
            excerpt(&at, finding.range, out)?;
            for related in &finding.related {
                let (line, col) = at.position(related.range.start);
                writeln!(
                    out,
                    "{}:{line}:{col}: note: {}",
                    report.path,
                    at.render(&related.message)
                )?;
                excerpt(&at, related.range, out)?;
            }
        }
    }
    Ok(())
}

/// The source line and a caret under the range, as compilers print them.
fn excerpt(at: &Located, range: ByteRange, out: &mut dyn Write) -> io::Result<()> {
    let (line, col) = at.index.line_col(range.start);
    let source = at.line_text(line);
    let prefix: String = source
        .get(..col)
        .unwrap_or("")
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let end = (range.end - range.start)
        .min(source.len().saturating_sub(col))
        .max(1);
    let width = source
        .get(col..col + end)
        .map_or(1, |s| s.chars().count())
        .max(1);
    writeln!(out, "{:>5} | {source}", line + 1)?;
    writeln!(out, "      | {prefix}^{}", "~".repeat(width - 1))
}

fn json_range(at: &Located, range: ByteRange) -> Value {
    let (sl, sc) = at.position(range.start);
    let (el, ec) = at.position(range.end);
    json!({"start": {"line": sl, "column": sc}, "end": {"line": el, "column": ec}})
}

/// The fix shown in JSON: the first verified fix that changes code (suppressions are not fixes).
fn primary_fix(finding: &Finding) -> Option<&Fix> {
    finding.fixes.iter().find(|f| f.preferred)
}

fn json_report(reports: &[FileReport]) -> Value {
    json!({"version": 1, "files": json_files(reports)})
}

/// The `files` array of the JSON report.
pub fn json_files(reports: &[FileReport]) -> Value {
    let files: Vec<Value> = reports
        .iter()
        .map(|report| {
            let at = Located::new(&report.text);
            let findings: Vec<Value> = report
                .findings
                .iter()
                .map(|f| {
                    let fix = primary_fix(f).map(|fix| {
                        json!({
                            "title": fix.title,
                            "edits": fix.edits.iter().map(|e| json!({"range": json_range(&at, e.range), "text": e.text})).collect::<Vec<_>>(),
                        })
                    });
                    json!({
                        "rule": f.rule,
                        "severity": f.severity.as_str(),
                        "source": f.origin.as_str(),
                        "confidence": f.confidence,
                        "message": at.render(&f.message),
                        "range": json_range(&at, f.range),
                        "related": f.related.iter().map(|r| json!({"range": json_range(&at, r.range), "message": at.render(&r.message)})).collect::<Vec<_>>(),
                        "fix": fix,
                    })
                })
                .collect();
            json!({"path": report.path, "findings": findings})
        })
        .collect();
    Value::Array(files)
}

fn sarif_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Information => "note",
        Severity::Hint => "none",
    }
}

fn sarif_region(at: &Located, range: ByteRange) -> Value {
    let (sl, sc) = at.code_point_position(range.start);
    let (el, ec) = at.code_point_position(range.end);
    json!({"startLine": sl, "startColumn": sc, "endLine": el, "endColumn": ec})
}

fn sarif_uri(path: &str) -> String {
    path.replace('%', "%25").replace(' ', "%20")
}

fn sarif_report(reports: &[FileReport], errors: &[String]) -> Value {
    let rule_list: Vec<Value> = rules::RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "shortDescription": {"text": r.summary},
                "fullDescription": {"text": r.why},
                "help": {"text": r.how_to_fix},
                "defaultConfiguration": {"level": sarif_level(r.severity)},
            })
        })
        .collect();
    let mut results = Vec::new();
    for report in reports {
        let at = Located::new(&report.text);
        let uri = sarif_uri(&report.path);
        let location = |range| json!({"physicalLocation": {"artifactLocation": {"uri": uri}, "region": sarif_region(&at, range)}});
        for f in &report.findings {
            let rule_index = rules::RULES.iter().position(|r| r.id == f.rule);
            let related: Vec<Value> = f
                .related
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut loc = location(r.range);
                    loc["id"] = json!(i);
                    loc["message"] = json!({"text": at.render(&r.message)});
                    loc
                })
                .collect();
            let fixes: Vec<Value> = primary_fix(f)
                .map(|fix| {
                    json!({
                        "description": {"text": fix.title},
                        "artifactChanges": [{
                            "artifactLocation": {"uri": uri},
                            "replacements": fix.edits.iter().map(|e| json!({
                                "deletedRegion": sarif_region(&at, e.range),
                                "insertedContent": {"text": e.text},
                            })).collect::<Vec<_>>(),
                        }],
                    })
                })
                .into_iter()
                .collect();
            results.push(json!({
                "ruleId": f.rule,
                "ruleIndex": rule_index,
                "level": sarif_level(f.severity),
                "message": {"text": at.render(&f.message)},
                "locations": [location(f.range)],
                "relatedLocations": related,
                "fixes": fixes,
                "properties": {"confidence": f.confidence, "source": f.origin.as_str()},
            }));
        }
    }
    let notifications: Vec<Value> = errors
        .iter()
        .map(|e| json!({"level": "error", "message": {"text": e}}))
        .collect();
    json!({
        "$schema": "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "aidiag",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_list,
            }},
            "columnKind": "unicodeCodePoints",
            "invocations": [{
                "executionSuccessful": errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    })
}

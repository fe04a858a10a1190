//! Reviewing a change instead of a tree: `aidiag check --diff REV [--to REV2]` and
//! `aidiag check --patch FILE|-`. Only what a change introduces is reported
//! (`analysis::diff`); what it fixes is listed in the summary.
//!
//! Git is driven through the `git` binary: it is what every kernel developer has, it reads every
//! repository format and configuration the user's own git reads (worktrees, alternates, partial
//! clones), and it applies patches exactly as `git am` would, with no C library to build.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::output::{self, Format};
use super::FileReport;
use crate::analysis::diff::{self, FileChange};
use crate::analysis::syntax::LineIndex;
use crate::analysis::{CheckOptions, Severity};

/// Runs git in `dir`; its standard output, or its error message.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let message = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "git {}: {}",
            args.join(" "),
            message.lines().next().unwrap_or("failed").trim()
        ))
    }
}

fn is_c(path: &str) -> bool {
    path.ends_with(".c") || path.ends_with(".h")
}

/// One file changed between two versions: its old path (None when added) and new path.
struct Changed {
    old: Option<String>,
    new: String,
}

/// `git diff --name-status` output: the C files added, modified or renamed.
fn changed_files(listing: &str) -> Vec<Changed> {
    listing
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let status = fields.first()?.chars().next()?;
            let (old, new) = match (status, fields.as_slice()) {
                ('A', [_, path]) => (None, *path),
                ('M' | 'T', [_, path]) => (Some(*path), *path),
                ('R' | 'C', [_, old, new]) => (Some(*old), *new),
                _ => return None,
            };
            is_c(new).then(|| Changed {
                old: old.map(str::to_owned),
                new: new.to_owned(),
            })
        })
        .collect()
}

fn text_of(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// What `--diff` and each patch of `--patch` found.
struct Reviewed {
    reports: Vec<FileReport>,
    /// Fixed findings: path, 1-based line, rule, message (in the old version).
    fixed: Vec<String>,
    touched: usize,
    warnings: bool,
}

fn review(files: Vec<(String, Option<String>, String)>) -> Reviewed {
    let mut reviewed = Reviewed {
        reports: Vec::new(),
        fixed: Vec::new(),
        touched: 0,
        warnings: false,
    };
    for (path, old, new) in files {
        let change: FileChange = diff::compare(old.as_deref(), &new, CheckOptions { fixes: true });
        reviewed.touched += change.touched;
        reviewed.warnings |= change.introduces_warnings();
        if let Some(old) = &old {
            let lines = LineIndex::new(old);
            for finding in &change.fixed {
                reviewed.fixed.push(format!(
                    "{path}:{}: {} [{}]",
                    lines.line(finding.range.start) + 1,
                    finding.message.render(&|o| lines.line(o)),
                    finding.rule
                ));
            }
        }
        reviewed.reports.push(FileReport {
            path,
            text: new,
            findings: change.introduced,
        });
    }
    reviewed
}

fn summary(reviewed: &Reviewed, stderr: &mut dyn Write) {
    let introduced: usize = reviewed.reports.iter().map(|r| r.findings.len()).sum();
    let _ = writeln!(
        stderr,
        "aidiag: {} functions touched in {} files: {introduced} findings introduced, {} fixed",
        reviewed.touched,
        reviewed.reports.len(),
        reviewed.fixed.len()
    );
    for fixed in &reviewed.fixed {
        let _ = writeln!(stderr, "aidiag: fixed: {fixed}");
    }
}

/// `aidiag check --diff BASE [--to TO] [PATHS...]`: the change from BASE to TO (or to the
/// working tree). Exit code 1 only when the change introduces a warning.
pub fn check_diff(
    format: Format,
    base: &str,
    to: Option<&str>,
    paths: &[PathBuf],
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let run = || -> Result<Reviewed, String> {
        let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
        let root = PathBuf::from(text_of(git(&cwd, &["rev-parse", "--show-toplevel"])?).trim());
        let mut args = vec!["diff", "--name-status", "-M", "--no-color", base];
        args.extend(to);
        args.push("--");
        let paths: Vec<String> = paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        args.extend(paths.iter().map(String::as_str));
        let listing = text_of(git(&cwd, &args)?);
        let mut files = Vec::new();
        for changed in changed_files(&listing) {
            let old = match &changed.old {
                Some(old) => Some(text_of(git(&root, &["show", &format!("{base}:{old}")])?)),
                None => None,
            };
            let new = match to {
                Some(to) => text_of(git(&root, &["show", &format!("{to}:{}", changed.new)])?),
                None => text_of(
                    std::fs::read(root.join(&changed.new))
                        .map_err(|e| format!("{}: {e}", changed.new))?,
                ),
            };
            files.push((changed.new, old, new));
        }
        Ok(review(files))
    };
    let reviewed = match run() {
        Ok(reviewed) => reviewed,
        Err(error) => {
            let _ = writeln!(stderr, "aidiag: error: {error}");
            return 2;
        }
    };
    let format = if format == Format::Reply {
        Format::Text
    } else {
        format
    };
    if let Err(error) = output::write(format, &reviewed.reports, &[], stdout) {
        let _ = writeln!(stderr, "aidiag: error: cannot write the report: {error}");
        return 2;
    }
    summary(&reviewed, stderr);
    i32::from(reviewed.warnings)
}

/// One patch of a series: its subject and its text.
struct Patch {
    subject: String,
    text: String,
    file: PathBuf,
}

/// The `Subject:` header of a mail (folded lines joined).
fn subject(text: &str) -> String {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            break;
        }
        if let Some(rest) = line.strip_prefix("Subject:") {
            let mut subject = rest.trim().to_owned();
            for more in lines.by_ref().take_while(|l| l.starts_with([' ', '\t'])) {
                subject.push(' ');
                subject.push_str(more.trim());
            }
            return subject;
        }
    }
    String::new()
}

/// A patch's outcome in the series.
struct PatchOutcome {
    subject: String,
    result: Result<Reviewed, String>,
    text: String,
}

fn split_series(series: &[u8], dir: &Path) -> Result<Vec<Patch>, String> {
    let mbox = dir.join("series.mbox");
    std::fs::write(&mbox, series).map_err(|e| e.to_string())?;
    let split = dir.join("split");
    std::fs::create_dir_all(&split).map_err(|e| e.to_string())?;
    let out = format!("-o{}", split.display());
    git(dir, &["mailsplit", "-b", &out, &mbox.to_string_lossy()])?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&split)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files
        .into_iter()
        .map(|file| {
            let text = text_of(std::fs::read(&file).unwrap_or_default());
            Patch {
                subject: subject(&text),
                text,
                file,
            }
        })
        .collect())
}

/// The files a patch changes, before and after it: (path, old text, new text).
type Versions = Vec<(String, Option<String>, String)>;

/// Applies one patch in `tree`; the versions of the C files it changes.
fn apply(tree: &Path, patch: &Patch) -> Result<Versions, String> {
    let file = patch.file.to_string_lossy();
    // The files it changes, from its `+++ b/PATH` lines (a deleted file has `+++ /dev/null`).
    let mut paths: Vec<String> = patch
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("+++ b/"))
        .map(|p| p.trim_end().to_owned())
        .filter(|p| is_c(p))
        .collect();
    paths.dedup();
    let old: Vec<Option<String>> = paths
        .iter()
        .map(|p| std::fs::read(tree.join(p)).ok().map(text_of))
        .collect();
    git(tree, &["apply", &file]).map_err(|e| format!("does not apply: {e}"))?;
    Ok(paths
        .into_iter()
        .zip(old)
        .filter_map(|(path, old)| {
            let new = std::fs::read(tree.join(&path)).ok().map(text_of)?;
            Some((path, old, new))
        })
        .collect())
}

/// `review` of each patch's versions, on every core (the patches were applied in order already).
fn review_all(applied: Vec<Result<Versions, String>>) -> Vec<Result<Reviewed, String>> {
    super::on_every_core(applied, |versions| versions.map(review))
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("the worker reviewing this patch stopped".to_owned())))
        .collect()
}

/// `aidiag check --patch FILE|-`: a `git format-patch` series or an mbox, applied one patch at a
/// time on top of HEAD in a temporary worktree; per patch, what it introduces. A patch that does
/// not apply is an error for that patch; the rest are still checked.
pub fn check_patches(
    format: Format,
    source: &Path,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let series = if source == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map(|_| bytes)
    } else {
        std::fs::read(source)
    };
    let series = match series {
        Ok(series) => series,
        Err(error) => {
            let _ = writeln!(stderr, "aidiag: error: {}: {error}", source.display());
            return 2;
        }
    };
    let outcomes = match review_series(&series) {
        Ok(outcomes) => outcomes,
        Err(error) => {
            let _ = writeln!(stderr, "aidiag: error: {error}");
            return 2;
        }
    };
    let written = write_series(format, &outcomes, stdout);
    if let Err(error) = written {
        let _ = writeln!(stderr, "aidiag: error: cannot write the report: {error}");
        return 2;
    }
    let total = outcomes.len();
    let mut code = 0;
    for (i, outcome) in outcomes.iter().enumerate() {
        let _ = write!(
            stderr,
            "aidiag: patch {}/{total} ({}): ",
            i + 1,
            outcome.subject
        );
        match &outcome.result {
            Ok(reviewed) => {
                summary(reviewed, stderr);
                if reviewed.warnings {
                    code = code.max(1);
                }
            }
            Err(error) => {
                let _ = writeln!(stderr, "error: {error}");
                code = 2;
            }
        }
    }
    code
}

fn review_series(series: &[u8]) -> Result<Vec<PatchOutcome>, String> {
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let root = PathBuf::from(text_of(git(&cwd, &["rev-parse", "--show-toplevel"])?).trim());
    let scratch =
        tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let patches = split_series(series, scratch.path())?;
    let tree = scratch.path().join("tree");
    let tree_arg = tree.to_string_lossy().into_owned();
    git(
        &root,
        &["worktree", "add", "--detach", "--quiet", &tree_arg, "HEAD"],
    )?;
    // Applied in order (each on top of the ones before), then reviewed in parallel.
    let applied: Vec<_> = patches.iter().map(|patch| apply(&tree, patch)).collect();
    let _ = git(&root, &["worktree", "remove", "--force", &tree_arg]);
    Ok(patches
        .into_iter()
        .zip(review_all(applied))
        .map(|(patch, result)| PatchOutcome {
            subject: patch.subject,
            result,
            text: patch.text,
        })
        .collect())
}

fn write_series(
    format: Format,
    outcomes: &[PatchOutcome],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let total = outcomes.len();
    match format {
        Format::Reply => {
            let mut first = true;
            for outcome in outcomes {
                let Ok(reviewed) = &outcome.result else {
                    continue;
                };
                if reviewed.reports.iter().all(|r| r.findings.is_empty()) {
                    continue;
                }
                if !first {
                    writeln!(out)?;
                }
                first = false;
                write!(out, "{}", reply(&outcome.text, &reviewed.reports))?;
            }
            Ok(())
        }
        Format::Json => {
            let patches: Vec<_> = outcomes
                .iter()
                .enumerate()
                .map(|(i, outcome)| {
                    let (applied, error, files) = match &outcome.result {
                        Ok(reviewed) => (true, None, output::json_files(&reviewed.reports)),
                        Err(e) => (false, Some(e.clone()), json!([])),
                    };
                    json!({"index": i + 1, "of": total, "subject": outcome.subject,
                           "applied": applied, "error": error, "files": files})
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &json!({"version": 1, "patches": patches}))?;
            writeln!(out)
        }
        Format::Sarif => {
            let reports: Vec<FileReport> = outcomes
                .iter()
                .filter_map(|o| o.result.as_ref().ok())
                .flat_map(|r| r.reports.iter().cloned())
                .collect();
            let errors: Vec<String> = outcomes
                .iter()
                .enumerate()
                .filter_map(|(i, o)| {
                    o.result
                        .as_ref()
                        .err()
                        .map(|e| format!("patch {}/{total}: {e}", i + 1))
                })
                .collect();
            output::write(Format::Sarif, &reports, &errors, out)
        }
        Format::Text => {
            for (i, outcome) in outcomes.iter().enumerate() {
                writeln!(out, "patch {}/{total}: {}", i + 1, outcome.subject)?;
                match &outcome.result {
                    Ok(reviewed) => output::write(Format::Text, &reviewed.reports, &[], out)?,
                    Err(error) => writeln!(out, "error: {error}")?,
                }
            }
            Ok(())
        }
    }
}

/// A review reply to one patch: its diff quoted with `> `, each finding written under the line it
/// concerns (a finding on a line outside the hunks goes after the last hunk of its file).
pub fn reply(patch: &str, reports: &[FileReport]) -> String {
    let mut out = String::new();
    // The findings of the file being quoted, by 1-based new line, with their text.
    let findings_of = |path: &str| -> Vec<(usize, String)> {
        reports
            .iter()
            .filter(|r| r.path == path)
            .flat_map(|r| {
                let lines = LineIndex::new(&r.text);
                r.findings.iter().map(move |f| {
                    let severity = match f.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                        Severity::Information => "note",
                        Severity::Hint => "hint",
                    };
                    (
                        lines.line(f.range.start) + 1,
                        format!(
                            "aidiag: {severity}: {} [{}]",
                            f.message.render(&|o| lines.line(o)),
                            f.rule
                        ),
                    )
                })
            })
            .collect()
    };
    let mut pending: Vec<(usize, String)> = Vec::new();
    let flush = |out: &mut String, pending: &mut Vec<(usize, String)>, upto: Option<usize>| {
        let (now, later): (Vec<_>, Vec<_>) = pending
            .drain(..)
            .partition(|(line, _)| upto.is_none_or(|u| *line <= u));
        for (_, text) in now {
            out.push('\n');
            out.push_str(&text);
            out.push_str("\n\n");
        }
        *pending = later;
    };
    let mut in_diff = false;
    let mut new_line = 0usize;
    for line in patch.lines() {
        if line.starts_with("diff --git ") {
            flush(&mut out, &mut pending, None);
            in_diff = true;
            let path = line.rsplit(" b/").next().unwrap_or("");
            pending = findings_of(path);
        } else if line == "-- " || !in_diff {
            if line == "-- " {
                in_diff = false;
                flush(&mut out, &mut pending, None);
            }
            continue;
        }
        out.push_str("> ");
        out.push_str(line);
        out.push('\n');
        if let Some(header) = line.strip_prefix("@@ ") {
            // "@@ -a,b +c,d @@": the next new line is c.
            new_line = header
                .split_whitespace()
                .find_map(|part| part.strip_prefix('+'))
                .and_then(|c| c.split(',').next())
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            continue;
        }
        if line.starts_with(' ') || line.starts_with('+') && !line.starts_with("+++") {
            flush(&mut out, &mut pending, Some(new_line));
            new_line += 1;
        }
    }
    flush(&mut out, &mut pending, None);
    out
}

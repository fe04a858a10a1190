//! The editor's `baseline` setting: the findings of the HEAD version of a document, so that the
//! ones an edit adds stand out. The HEAD text comes from the `git` binary (see `cli::review` for
//! why git is driven that way), read once per opened document, off the request path.

use std::path::Path;
use std::process::Command;

use crate::analysis::diff;
use crate::analysis::{Finding, Severity};

/// What HEAD's version of the file reports; empty when the file is not in a git repository or
/// not in HEAD (then every finding is new).
pub fn read(path: &Path) -> Vec<(String, String, String)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let out = Command::new("git")
        .arg("show")
        .arg(format!("HEAD:./{}", name.to_string_lossy()))
        .current_dir(dir)
        .output();
    match out {
        Ok(out) if out.status.success() => diff::baseline(&String::from_utf8_lossy(&out.stdout)),
        Ok(out) => {
            tracing::debug!(path = %path.display(), "no HEAD version: {}", String::from_utf8_lossy(&out.stderr).trim());
            Vec::new()
        }
        Err(error) => {
            tracing::warn!("cannot run git for the baseline: {error}");
            Vec::new()
        }
    }
}

/// Marks the findings HEAD already had: hint severity and "(present before this change)".
/// `function_of` names the function holding an offset.
pub fn mark(
    findings: &mut [Finding],
    mut baseline: Vec<(String, String, String)>,
    function_of: impl Fn(usize) -> Option<String>,
) {
    for finding in findings {
        let Some(function) = function_of(finding.range.start) else {
            continue;
        };
        if diff::present_before(&mut baseline, &function, finding) {
            finding.severity = Severity::Hint;
            finding.message = finding
                .message
                .clone()
                .text(" (present before this change)");
        }
    }
}

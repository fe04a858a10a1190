//! The one place where analysis findings become LSP values.

use std::collections::HashMap;

use ropey::Rope;
use tower_lsp::lsp_types::{
    CodeAction, CodeActionKind, CodeDescription, Diagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, Location, NumberOrString, TextEdit, Url, WorkspaceEdit,
};

use super::line_index::{self, Encoding};
use crate::analysis::{rules, Finding, Fix, Severity};

/// What a conversion needs to know about the document.
pub struct Target<'a> {
    pub uri: &'a Url,
    pub rope: &'a Rope,
    pub encoding: Encoding,
}

impl Target<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.rope.byte_to_line(offset.min(self.rope.len_bytes()))
    }
}

/// The documentation page of a rule: `docs/rules/<rule-id>.md` in the source tree aidiag was
/// built from.
pub fn rule_doc(rule: &str) -> Option<Url> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/rules")
        .join(format!("{rule}.md"));
    Url::from_file_path(path).ok()
}

fn severity(severity: Severity) -> DiagnosticSeverity {
    match severity {
        Severity::Error => DiagnosticSeverity::ERROR,
        Severity::Warning => DiagnosticSeverity::WARNING,
        Severity::Information => DiagnosticSeverity::INFORMATION,
        Severity::Hint => DiagnosticSeverity::HINT,
    }
}

/// A finding as an LSP diagnostic.
pub fn diagnostic(finding: &Finding, target: &Target) -> Diagnostic {
    let line_of = |o| target.line_of(o);
    let related = finding
        .related
        .iter()
        .map(|r| DiagnosticRelatedInformation {
            location: Location::new(
                target.uri.clone(),
                line_index::range(target.rope, r.range, target.encoding),
            ),
            message: r.message.render(&line_of),
        })
        .collect();
    Diagnostic {
        range: line_index::range(target.rope, finding.range, target.encoding),
        severity: Some(severity(finding.severity)),
        code: Some(NumberOrString::String(finding.rule.to_owned())),
        code_description: rule_doc(finding.rule).map(|href| CodeDescription { href }),
        source: Some("aidiag".to_owned()),
        message: finding.message.render(&line_of),
        related_information: Some(related),
        tags: None,
        data: None,
    }
}

/// A verified fix as a quick-fix code action for `finding`.
pub fn code_action(finding: &Finding, fix: &Fix, target: &Target) -> CodeAction {
    let edits = fix
        .edits
        .iter()
        .map(|e| {
            TextEdit::new(
                line_index::range(target.rope, e.range, target.encoding),
                e.text.clone(),
            )
        })
        .collect();
    CodeAction {
        title: fix.title.clone(),
        kind: Some(CodeActionKind::QUICKFIX),
        diagnostics: Some(vec![diagnostic(finding, target)]),
        edit: Some(WorkspaceEdit {
            changes: Some(HashMap::from([(target.uri.clone(), edits)])),
            ..WorkspaceEdit::default()
        }),
        is_preferred: Some(fix.preferred),
        ..CodeAction::default()
    }
}

/// Hover markdown for a finding: what is wrong, the evidence, why it matters and how to fix it.
pub fn hover_markdown(finding: &Finding, target: &Target) -> String {
    let line_of = |o| target.line_of(o);
    let mut text = format!(
        "**{}** ({}, from a {}, confidence {:.2})\n\n{}\n",
        finding.rule,
        finding.severity.as_str(),
        if finding.origin == crate::analysis::Origin::Rule {
            "deterministic rule"
        } else {
            "model"
        },
        finding.confidence,
        finding.message.render(&line_of)
    );
    if !finding.related.is_empty() {
        text.push_str("\n**Evidence**\n");
        for r in &finding.related {
            text.push_str(&format!(
                "- line {}: {}\n",
                line_of(r.range.start) + 1,
                r.message.render(&line_of)
            ));
        }
    }
    if let Some(rule) = rules::rule(finding.rule) {
        text.push_str(&format!(
            "\n**Why it matters:** {}\n\n**How to fix:** {}\n",
            rule.why, rule.how_to_fix
        ));
    }
    if let Some(doc) = rule_doc(finding.rule) {
        text.push_str(&format!("\n[Rule documentation]({doc})\n"));
    }
    text
}

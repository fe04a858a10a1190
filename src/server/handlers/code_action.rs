//! `codeAction`: verified quick fixes for the findings in the requested range, plus
//! "suppress this finding here".

use tower_lsp::lsp_types::{CodeActionOrCommand, CodeActionParams};

use crate::analysis::cache::function_node;
use crate::analysis::rules::{self, CheckOptions};
use crate::model::{draft, FindingText};
use crate::server::convert::{self, Target};
use crate::server::model_worker::Status;
use crate::server::{line_index, Session};

pub fn run(session: &Session, params: CodeActionParams) -> Vec<CodeActionOrCommand> {
    let encoding = session.encoding();
    let uri = params.text_document.uri;
    let Some(document) = super::text_document::current(session, &uri) else {
        return Vec::new();
    };
    let wanted = line_index::byte_range(&document.rope, params.range, encoding);
    let Some(function) = document.functions.at(wanted.start).cloned() else {
        return Vec::new();
    };
    let Some(node) = function_node(&document.tree, function.range) else {
        return Vec::new();
    };
    let text = document.rope.to_string();
    let findings = rules::check_function(node, &text, CheckOptions { fixes: true });
    let target = Target {
        uri: &uri,
        rope: &document.rope,
        encoding,
    };
    let mut actions: Vec<CodeActionOrCommand> = findings
        .iter()
        .filter(|f| f.range.overlaps(wanted))
        .flat_map(|f| f.fixes.iter().map(move |fix| (f, fix)))
        .map(|(f, fix)| CodeActionOrCommand::CodeAction(convert::code_action(f, fix, &target)))
        .collect();
    let worker = session
        .model
        .get()
        .filter(|_| session.settings().model_fixes);
    if let Some(worker) = worker {
        if let Status::Ready { name, .. } = worker.status() {
            let line_of = |o: usize| document.rope.byte_to_line(o.min(document.rope.len_bytes()));
            for finding in findings.iter().filter(|f| f.range.overlaps(wanted)) {
                let code = text[function.range.start..function.range.end].to_owned();
                let finding_text =
                    FindingText::new(finding, code, line_of(function.range.start), &line_of);
                // Not written yet: the draft is queued and offered on a later request.
                let Some(written) = worker.draft(function.hash, finding_text) else {
                    continue;
                };
                if let Some(fix) = draft::verified_fix(&text, node, finding, &written, &name) {
                    let action = convert::code_action(finding, &fix, &target);
                    actions.push(CodeActionOrCommand::CodeAction(action));
                }
            }
        }
    }
    actions
}

//! `codeAction`: verified quick fixes for the findings in the requested range, plus
//! "suppress this finding here".

use tower_lsp::lsp_types::{CodeActionOrCommand, CodeActionParams};

use crate::analysis::cache::function_node;
use crate::analysis::rules::{self, CheckOptions};
use crate::server::convert::{self, Target};
use crate::server::{line_index, Session};

pub fn run(session: &Session, params: CodeActionParams) -> Vec<CodeActionOrCommand> {
    let encoding = session.encoding();
    let uri = params.text_document.uri;
    let Some(document) = session.documents.get(&uri) else {
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
    findings
        .iter()
        .filter(|f| f.range.overlaps(wanted))
        .flat_map(|f| f.fixes.iter().map(move |fix| (f, fix)))
        .map(|(f, fix)| CodeActionOrCommand::CodeAction(convert::code_action(f, fix, &target)))
        .collect()
}

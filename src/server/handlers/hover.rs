//! `hover`: explains the finding under the cursor. It reads only cached findings and never
//! waits for a check.

use tower_lsp::lsp_types::{Hover, HoverContents, HoverParams, MarkupContent, MarkupKind};

use crate::analysis::functions::Function;
use crate::analysis::Finding;
use crate::model::FindingText;
use crate::server::convert::{self, Target};
use crate::server::model_worker::{ModelWorker, Status};
use crate::server::{line_index, Session};

pub fn run(session: &Session, params: HoverParams) -> Option<Hover> {
    let encoding = session.encoding();
    let uri = params.text_document_position_params.text_document.uri;
    // Never waits for a parse: the function is found through the edits not parsed yet.
    let document = session.documents.get(&uri)?;
    let offset = line_index::offset(
        &document.rope,
        params.text_document_position_params.position,
        encoding,
    );
    let function = document.function_at(offset)?;
    let function = &function;
    let findings = session.cache.cached(function)?;
    let finding = findings
        .iter()
        .find(|f| f.range.start <= offset && offset <= f.range.end)?;
    let target = Target {
        uri: &uri,
        rope: &document.rope,
        encoding,
    };
    let mut value = convert::hover_markdown(finding, &target);
    let explanations = session.settings().model_explanations;
    if let Some(worker) = session.model.get().filter(|_| explanations) {
        value.push_str(&model_section(worker, finding, function, &document.rope));
    }
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: Some(line_index::range(&document.rope, finding.range, encoding)),
    })
}

/// The model's explanation, clearly marked as such, or a note that it is being written.
fn model_section(
    worker: &ModelWorker,
    finding: &Finding,
    function: &Function,
    rope: &ropey::Rope,
) -> String {
    let Status::Ready { name, .. } = worker.status() else {
        return String::new();
    };
    let line_of = |o: usize| rope.byte_to_line(o.min(rope.len_bytes()));
    let code = rope
        .get_byte_slice(function.range.start..function.range.end)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let first_line = line_of(function.range.start);
    let text = FindingText::new(finding, code, first_line, &line_of);
    match worker.explanation(function.hash, text) {
        Some(written) if written.is_empty() => String::new(),
        Some(written) => format!(
            "\n---\n**Explanation written by the local model ({name}); it may be wrong:**\n\n{}\n",
            crate::model::explain::render(&written, first_line)
        ),
        None => format!(
            "\n---\n_The local model ({name}) is writing an explanation; hover again in a few seconds._\n"
        ),
    }
}

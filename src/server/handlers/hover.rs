//! `hover`: explains the finding under the cursor. It reads only cached findings and never
//! waits for a check.

use tower_lsp::lsp_types::{Hover, HoverContents, HoverParams, MarkupContent, MarkupKind};

use crate::server::convert::{self, Target};
use crate::server::{line_index, Session};

pub fn run(session: &Session, params: HoverParams) -> Option<Hover> {
    let encoding = session.encoding();
    let uri = params.text_document_position_params.text_document.uri;
    let document = session.documents.get(&uri)?;
    let offset = line_index::offset(
        &document.rope,
        params.text_document_position_params.position,
        encoding,
    );
    let function = document.functions.at(offset)?;
    let findings = session.cache.cached(function)?;
    let finding = findings
        .iter()
        .find(|f| f.range.start <= offset && offset <= f.range.end)?;
    let target = Target {
        uri: &uri,
        rope: &document.rope,
        encoding,
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: convert::hover_markdown(finding, &target),
        }),
        range: Some(line_index::range(&document.rope, finding.range, encoding)),
    })
}

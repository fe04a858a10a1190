//! `didOpen`, `didChange`, `didClose`: keep the rope, the tree and the function index current.

use tower_lsp::lsp_types::{DidChangeTextDocumentParams, TextDocumentItem, Url};

use crate::server::document::Document;
use crate::server::Session;

pub fn did_open(session: &Session, item: TextDocumentItem) {
    tracing::info!(uri = %item.uri, version = item.version, bytes = item.text.len(), "opened");
    session
        .documents
        .insert(item.uri, Document::new(&item.text, item.version));
}

/// Applies the changes; false when the document is not open (the change is dropped).
pub fn did_change(session: &Session, params: DidChangeTextDocumentParams) -> bool {
    let encoding = session.encoding();
    let uri = params.text_document.uri;
    let Some(mut document) = session.documents.get_mut(&uri) else {
        tracing::warn!(%uri, "change for a document that is not open; ignored");
        return false;
    };
    let changed = document.apply(
        &params.content_changes,
        params.text_document.version,
        encoding,
    );
    document.edited = changed
        .iter()
        .filter_map(|&i| document.functions.functions().get(i).map(|f| f.hash))
        .collect();
    // A function whose findings the model judges starts its next verdict prompt now, while the
    // debounce runs.
    if let Some(worker) = session.model.get() {
        for function in changed
            .iter()
            .filter_map(|&i| document.functions.functions().get(i))
        {
            worker.edited(&uri, &function.name, function.hash, || {
                document
                    .rope
                    .get_byte_slice(function.range.start..function.range.end)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            });
        }
    }
    tracing::debug!(%uri, version = params.text_document.version, changed_functions = changed.len(), "changed");
    true
}

pub fn did_close(session: &Session, uri: &Url) {
    session.documents.remove(uri);
    session.generations.remove(uri);
    if let Some(worker) = session.model.get() {
        worker.forget(uri);
    }
}

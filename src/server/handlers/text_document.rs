//! `didOpen`, `didChange`, `didClose`: keep the rope, the tree and the function index current.

use tower_lsp::lsp_types::{DidChangeTextDocumentParams, TextDocumentItem, Url};

use crate::server::document::Document;
use crate::server::Session;

/// Documents larger than this are not kept or checked: the largest C file of Linux 6.12 is
/// 1.8 MB, and a 50 MB document took 1.5 GB and held other requests for seconds.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

fn too_large(uri: &Url, bytes: usize) -> String {
    format!(
        "aidiag: {uri} is {bytes} bytes, more than the {MAX_DOCUMENT_BYTES}-byte limit; it is not checked (reopen it when it is smaller, or use `aidiag check`)"
    )
}

/// Keeps the document; an error message when it is too large to keep.
pub fn did_open(session: &Session, item: TextDocumentItem) -> Result<(), String> {
    tracing::info!(uri = %item.uri, version = item.version, bytes = item.text.len(), "opened");
    if item.text.len() > MAX_DOCUMENT_BYTES {
        session.documents.remove(&item.uri);
        return Err(too_large(&item.uri, item.text.len()));
    }
    // HEAD may have moved since the document was last open.
    session.baselines.remove(&item.uri);
    session
        .documents
        .insert(item.uri, Document::new(&item.text, item.version));
    Ok(())
}

/// Applies the changes; `Ok(false)` when the document is not open (the change is dropped), an
/// error message when the change made it too large (it is closed).
pub fn did_change(session: &Session, params: DidChangeTextDocumentParams) -> Result<bool, String> {
    // A change's text ends up whole in the document: one larger than the limit is not applied.
    let uri = params.text_document.uri.clone();
    if let Some(big) = params
        .content_changes
        .iter()
        .map(|c| c.text.len())
        .find(|&n| n > MAX_DOCUMENT_BYTES)
    {
        did_close(session, &uri);
        return Err(too_large(&uri, big));
    }
    let applied = apply_change(session, params);
    let size = session.documents.get(&uri).map(|d| d.rope.len_bytes());
    match size {
        Some(bytes) if bytes > MAX_DOCUMENT_BYTES => {
            did_close(session, &uri);
            Err(too_large(&uri, bytes))
        }
        _ => Ok(applied),
    }
}

fn apply_change(session: &Session, params: DidChangeTextDocumentParams) -> bool {
    let encoding = session.encoding();
    let uri = params.text_document.uri;
    let Some(mut document) = session.documents.get_mut(&uri) else {
        tracing::warn!(%uri, "change for a document that is not open; ignored");
        return false;
    };
    document.apply(
        &params.content_changes,
        params.text_document.version,
        encoding,
    );
    // With the model on, a function whose findings it judges starts its next verdict prompt
    // now, while the debounce runs: that needs the functions at once. Otherwise parsing waits
    // until a request or the debounced check needs the tree.
    if session.model.get().is_some() {
        refresh(session, &uri, &mut document);
    }
    tracing::debug!(%uri, version = params.text_document.version, "changed");
    true
}

/// Brings a document's tree and functions up to date with its text, and tells the model worker
/// which functions changed.
pub fn refresh(session: &Session, uri: &Url, document: &mut Document) {
    if !document.is_stale() {
        return;
    }
    let changed = document.refresh();
    document.edited = changed
        .iter()
        .filter_map(|&i| document.functions.functions().get(i).map(|f| f.hash))
        .collect();
    if let Some(worker) = session.model.get() {
        for function in changed
            .iter()
            .filter_map(|&i| document.functions.functions().get(i))
        {
            worker.edited(uri, &function.name, function.hash, || {
                document
                    .rope
                    .get_byte_slice(function.range.start..function.range.end)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            });
        }
    }
    tracing::debug!(%uri, changed_functions = changed.len(), "refreshed");
}

/// The document at `uri` with its tree and functions current: what every reader of the tree
/// (hover, code actions, commands, checks) takes.
pub fn current<'a>(
    session: &'a Session,
    uri: &Url,
) -> Option<dashmap::mapref::one::Ref<'a, Url, Document>> {
    let mut document = session.documents.get_mut(uri)?;
    refresh(session, uri, &mut document);
    Some(document.downgrade())
}

pub fn did_close(session: &Session, uri: &Url) {
    session.documents.remove(uri);
    session.baselines.remove(uri);
    session.generations.remove(uri);
    if let Some(worker) = session.model.get() {
        worker.forget(uri);
    }
}

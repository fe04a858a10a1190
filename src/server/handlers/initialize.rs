//! `initialize`: negotiates the position encoding, reads settings, announces capabilities.

use tower_lsp::lsp_types::*;

use crate::server::line_index::Encoding;
use crate::server::Session;

/// Returns the reply and the problems found in `initializationOptions`.
pub fn run(session: &Session, params: InitializeParams) -> (InitializeResult, Vec<String>) {
    let offered = params
        .capabilities
        .general
        .as_ref()
        .and_then(|g| g.position_encodings.as_deref());
    let encoding = Encoding::negotiate(offered);
    let progress = params
        .capabilities
        .window
        .as_ref()
        .and_then(|w| w.work_done_progress)
        .unwrap_or(false);
    session
        .work_done_progress
        .store(progress, std::sync::atomic::Ordering::Relaxed);
    *session.encoding.write().unwrap_or_else(|e| e.into_inner()) = encoding;
    let problems = match &params.initialization_options {
        Some(options) => session
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .update(options),
        None => Vec::new(),
    };
    let capabilities = ServerCapabilities {
        position_encoding: Some(encoding.kind()),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
            ..CodeActionOptions::default()
        })),
        ..ServerCapabilities::default()
    };
    let result = InitializeResult {
        capabilities,
        server_info: Some(ServerInfo {
            name: "aidiag".to_owned(),
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }),
    };
    (result, problems)
}

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
    let mut problems = Vec::new();
    // The project file first, then the editor's settings on top of it.
    #[allow(deprecated)]
    let root = params
        .workspace_folders
        .as_ref()
        .and_then(|folders| folders.first())
        .map(|folder| folder.uri.clone())
        .or_else(|| params.root_uri.clone())
        .and_then(|uri| uri.to_file_path().ok());
    if let Some(root) = root {
        match crate::config::load(&root) {
            Ok(Some(project)) => {
                tracing::info!(file = ?project.file, "project settings");
                session
                    .settings
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply_project(&project);
            }
            Ok(None) => {}
            Err(error) => problems.push(format!("aidiag: {error}")),
        }
    }
    if let Some(options) = &params.initialization_options {
        problems.extend(
            session
                .settings
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .update(options),
        );
    }
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
        execute_command_provider: Some(ExecuteCommandOptions {
            commands: super::command::COMMANDS
                .iter()
                .map(|c| c.to_string())
                .collect(),
            ..ExecuteCommandOptions::default()
        }),
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

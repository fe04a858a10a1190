//! Checks run off the request path: debounced after the last change, cancelled when the document
//! changes again, and published with the document version they were computed for.

use std::sync::Arc;
use std::time::Duration;

use tower_lsp::lsp_types::Url;
use tower_lsp::Client;

use super::convert::{self, Target};
use super::Session;

fn next_generation(session: &Session, uri: &Url) -> u64 {
    let mut entry = session.generations.entry(uri.clone()).or_insert(0);
    *entry += 1;
    *entry
}

fn is_current(session: &Session, uri: &Url, generation: u64) -> bool {
    session
        .generations
        .get(uri)
        .is_some_and(|g| *g == generation)
}

/// Schedules a check of `uri`; a later call for the same document supersedes this one.
pub fn schedule(session: Arc<Session>, client: Client, uri: Url) {
    let generation = next_generation(&session, &uri);
    let debounce = Duration::from_millis(session.settings().debounce_ms);
    tokio::spawn(async move {
        tokio::time::sleep(debounce).await;
        if !is_current(&session, &uri, generation) {
            return;
        }
        // Take a snapshot; the document lock is released before any await.
        let snapshot = session.documents.get(&uri).map(|d| {
            (
                d.version,
                d.rope.to_string(),
                d.tree.clone(),
                d.functions.clone(),
            )
        });
        let Some((version, text, tree, functions)) = snapshot else {
            return;
        };
        let worker = session.clone();
        let worker_uri = uri.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let mut findings = Vec::new();
            for function in functions.functions() {
                // Cancelled: the document changed again; the next run will check it.
                if !is_current(&worker, &worker_uri, generation) {
                    return None;
                }
                findings.extend(worker.cache.findings(function, &tree, &text));
            }
            Some(findings)
        })
        .await;
        let Ok(Some(findings)) = checked else { return };
        let diagnostics = {
            let Some(document) = session.documents.get(&uri) else {
                return;
            };
            if document.version != version {
                return;
            }
            let target = Target {
                uri: &uri,
                rope: &document.rope,
                encoding: session.encoding(),
            };
            findings
                .iter()
                .map(|f| convert::diagnostic(f, &target))
                .collect::<Vec<_>>()
        };
        tracing::info!(%uri, version, diagnostics = diagnostics.len(), "publishing");
        client
            .publish_diagnostics(uri, diagnostics, Some(version))
            .await;
    });
}

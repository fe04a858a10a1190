//! Checks run off the request path: debounced after the last change, cancelled when the document
//! changes again, and published with the document version they were computed for.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tower_lsp::lsp_types::Url;
use tower_lsp::Client;

use super::convert::{self, Target};
use super::document::{self, Document};
use super::model_worker::{Status, PRIORITY_EDITED, PRIORITY_OTHER};
use super::Session;
use crate::analysis::functions::Function;
use crate::analysis::Finding;
use crate::model::judge::{self, VerdictPolicy};
use crate::model::review;
use crate::model::service;
use crate::model::FindingText;

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

/// Schedules a check of `uri` after the debounce time; a later call for the same document
/// supersedes this one.
pub fn schedule(session: Arc<Session>, client: Client, uri: Url) {
    let debounce = Duration::from_millis(session.settings().debounce_ms);
    schedule_after(session, client, uri, debounce);
}

/// Schedules a check at once: when a verdict arrives, the findings come from the cache and only
/// the verdicts are new.
pub fn schedule_now(session: Arc<Session>, client: Client, uri: Url) {
    schedule_after(session, client, uri, Duration::ZERO);
}

fn schedule_after(session: Arc<Session>, client: Client, uri: Url, debounce: Duration) {
    let generation = next_generation(&session, &uri);
    tokio::spawn(async move {
        tokio::time::sleep(debounce).await;
        if !is_current(&session, &uri, generation) {
            return;
        }
        // Take a snapshot; the document lock is released before any await.
        let snapshot = super::handlers::text_document::current(&session, &uri).map(|d| {
            (
                d.version,
                d.rope.to_string(),
                d.tree.clone(),
                d.functions.clone(),
                d.unsettled(),
                d.revision,
            )
        });
        let Some((version, text, tree, functions, unsettled, revision)) = snapshot else {
            return;
        };
        let worker = session.clone();
        let worker_uri = uri.clone();
        let checked = tokio::task::spawn_blocking(move || {
            // After incremental parses of broken code, check what a fresh parse gives.
            let fresh = unsettled.map(|(masked, rope)| document::parse_fresh(&masked, &rope));
            let (tree, functions) = match &fresh {
                Some((tree, functions)) => (tree, functions),
                None => (&tree, &functions),
            };
            let mut findings = Vec::new();
            for function in functions.functions() {
                // Cancelled: the document changed again; the next run will check it.
                if !is_current(&worker, &worker_uri, generation) {
                    return None;
                }
                findings.extend(worker.cache.findings(function, tree, &text));
            }
            if worker.settings().baseline_head {
                let known = worker.baselines.get(&worker_uri).map(|b| b.clone());
                let baseline = known.unwrap_or_else(|| {
                    // Read without holding the map: git and a check of the HEAD text take time.
                    let read = worker_uri
                        .to_file_path()
                        .map(|path| super::baseline::read(&path))
                        .unwrap_or_default();
                    worker.baselines.insert(worker_uri.clone(), read.clone());
                    read
                });
                super::baseline::mark(&mut findings, baseline, |offset| {
                    functions.at(offset).map(|f| f.name.clone())
                });
            }
            Some((findings, fresh))
        })
        .await;
        let Ok(Some((mut findings, fresh))) = checked else {
            return;
        };
        if let Some((tree, functions)) = fresh {
            if let Some(mut document) = session.documents.get_mut(&uri) {
                if document.revision == revision {
                    document.settle(tree, functions);
                }
            }
        }
        let diagnostics = {
            let Some(document) = session.documents.get(&uri) else {
                return;
            };
            if document.version != version {
                return;
            }
            findings = with_model(&session, &document, &uri, findings);
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

/// Adds the model's part to the findings: verdicts on the findings of the rules that need
/// judgement (under the policy in force) and, when reviews are on, the model's own findings at
/// information severity. What the model has not done yet is asked for (the edited functions
/// first) and published when it arrives. A dropped finding is left out.
fn with_model(
    session: &Session,
    document: &Document,
    uri: &Url,
    findings: Vec<Finding>,
) -> Vec<Finding> {
    let Some(worker) = session.model.get() else {
        return findings;
    };
    let Status::Ready {
        name,
        policy,
        review,
    } = worker.status()
    else {
        return findings;
    };
    if policy == VerdictPolicy::Off && !review {
        return findings;
    }
    let rope = &document.rope;
    let line_of = |o: usize| rope.byte_to_line(o.min(rope.len_bytes()));
    let code_of = |function: &Function| {
        rope.get_byte_slice(function.range.start..function.range.end)
            .map(|s| s.to_string())
            .unwrap_or_default()
    };
    let priority_of = |function: &Function| {
        if document.edited.contains(&function.hash) {
            PRIORITY_EDITED
        } else {
            PRIORITY_OTHER
        }
    };
    let mut kept = Vec::with_capacity(findings.len());
    let mut judged = HashSet::new();
    for mut finding in findings {
        let function = document.functions.at(finding.range.start);
        let keep = match function {
            Some(function)
                if policy != VerdictPolicy::Off && judge::JUDGED_RULES.contains(&finding.rule) =>
            {
                judged.insert(function.name.clone());
                let text = FindingText::new(
                    &finding,
                    code_of(function),
                    line_of(function.range.start),
                    &line_of,
                );
                match worker.verdict(function.hash, text, uri, priority_of(function)) {
                    Some(verdict) => service::apply(&mut finding, verdict, policy, &name),
                    None => true,
                }
            }
            _ => true,
        };
        if keep {
            kept.push(finding);
        }
    }
    worker.set_judged(uri, judged);
    if review {
        for function in document.functions.functions() {
            let code = code_of(function);
            let text = FindingText {
                rule: "review",
                message: String::new(),
                evidence: Vec::new(),
                function: code.clone(),
                context: String::new(),
            };
            if let Some(Some(review)) =
                worker.review(function.hash, text, uri, priority_of(function))
            {
                kept.extend(review::to_finding(
                    &review,
                    &code,
                    function.range.start,
                    &name,
                ));
            }
        }
    }
    kept
}

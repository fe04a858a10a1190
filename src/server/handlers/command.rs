//! `workspace/executeCommand`: the commands editors bind to keys or menu entries.
//!
//! - `aidiag.reanalyze` `[uri, position]`: checks the function at the position again (its cached
//!   findings are dropped and computed anew) and publishes the document; with only `[uri]`, the whole document.
//! - `aidiag.modelStatus`: what the model is doing, as an object
//!   (`{"state", "model", "verdicts", "review"}`) that clients show as they like.

use serde_json::{json, Value};
use tower_lsp::lsp_types::{ExecuteCommandParams, Position, Url};

use crate::server::model_worker::Status;
use crate::server::{line_index, Session};

pub const REANALYZE: &str = "aidiag.reanalyze";
pub const MODEL_STATUS: &str = "aidiag.modelStatus";
pub const COMMANDS: &[&str] = &[REANALYZE, MODEL_STATUS];

/// What the command asks the server to do after it answers.
pub enum After {
    Nothing,
    Check(Url),
}

/// Runs the command; `Err` is a message for an invalid request (unknown command, bad argument).
pub fn run(session: &Session, params: ExecuteCommandParams) -> Result<(Value, After), String> {
    match params.command.as_str() {
        REANALYZE => {
            let uri = params
                .arguments
                .first()
                .and_then(|v| serde_json::from_value::<Url>(v.clone()).ok())
                .ok_or_else(|| format!("{REANALYZE} takes [uri, position?]"))?;
            let position = match params.arguments.get(1) {
                None | Some(Value::Null) => None,
                Some(v) => Some(serde_json::from_value::<Position>(v.clone()).map_err(|e| {
                    format!("{REANALYZE}: the position is not an LSP position: {e}")
                })?),
            };
            let mut document = session
                .documents
                .get_mut(&uri)
                .ok_or_else(|| format!("{REANALYZE}: {uri} is not open"))?;
            // Re-analysis starts from a fresh parse, whatever incremental parses left behind.
            super::text_document::refresh(session, &uri, &mut document);
            document.reparse();
            let document = document.downgrade();
            let functions: Vec<_> = match position {
                Some(position) => {
                    let offset = line_index::offset(&document.rope, position, session.encoding());
                    document.functions.at(offset).into_iter().cloned().collect()
                }
                None => document.functions.functions().to_vec(),
            };
            // Checked again here (well under a millisecond a function), so a hover right after
            // the command already sees the new findings; the publication follows.
            let text = document.rope.to_string();
            for function in &functions {
                session.cache.forget(function);
                session.cache.findings(function, &document.tree, &text);
            }
            Ok((
                json!({"functions": functions.len()}),
                After::Check(uri.clone()),
            ))
        }
        MODEL_STATUS => {
            let settings = session.settings();
            let status = match session.model.get().map(|w| w.status()) {
                None if !settings.use_model => {
                    json!({"state": "off", "reason": "useModel is false"})
                }
                None => {
                    json!({"state": "off", "reason": "nothing is set to use the model (modelExplanations, modelFixes, modelVerdicts, modelReview)"})
                }
                Some(Status::Loading) => json!({"state": "loading"}),
                Some(Status::Unavailable) => json!({"state": "unavailable"}),
                Some(Status::Ready {
                    name,
                    policy,
                    review,
                }) => json!({
                    "state": "ready",
                    "model": name,
                    "verdicts": format!("{policy:?}").to_lowercase(),
                    "review": review,
                    "explanations": settings.model_explanations,
                    "fixes": settings.model_fixes,
                }),
            };
            Ok((status, After::Nothing))
        }
        other => Err(format!(
            "unknown command {other}; aidiag offers {}",
            COMMANDS.join(", ")
        )),
    }
}

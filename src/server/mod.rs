//! The LSP layer: the only code that knows LSP and JSON-RPC. Handlers stay short: they update
//! state before any `.await`, never hold a lock across one, and hand checks to the scheduler.

mod baseline;
mod convert;
pub mod document;
mod handlers;
pub mod line_index;
mod model_worker;
mod scheduler;
mod settings;
mod transport;

#[doc(hidden)]
pub use transport::fuzz_framing;

use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use tower_lsp::jsonrpc::Result;
use tower_lsp::lsp_types::*;
use tower_lsp::{Client, LanguageServer, LspService};

use crate::analysis::cache::FindingCache;
use crate::model::judge::VerdictPolicy;
use document::Document;
use line_index::Encoding;
use settings::Settings;

/// How many functions' findings the cache keeps.
const CACHE_FUNCTIONS: usize = 50_000;

/// Everything the handlers share.
pub struct Session {
    documents: DashMap<Url, Document>,
    cache: FindingCache,
    encoding: RwLock<Encoding>,
    settings: RwLock<Settings>,
    generations: DashMap<Url, u64>,
    /// Per document, what HEAD's version reports (the `baseline` setting), read once per open.
    baselines: DashMap<Url, Vec<(String, String, String)>>,
    model: std::sync::OnceLock<Arc<model_worker::ModelWorker>>,
    /// Whether the client accepts `window/workDoneProgress/create`.
    work_done_progress: std::sync::atomic::AtomicBool,
}

impl Session {
    fn new() -> Session {
        Session {
            documents: DashMap::new(),
            cache: FindingCache::new(CACHE_FUNCTIONS),
            encoding: RwLock::new(Encoding::default()),
            settings: RwLock::new(Settings::default()),
            generations: DashMap::new(),
            baselines: DashMap::new(),
            model: std::sync::OnceLock::new(),
            work_done_progress: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn encoding(&self) -> Encoding {
        *self.encoding.read().unwrap_or_else(|e| e.into_inner())
    }

    fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub struct Backend {
    client: Client,
    session: Arc<Session>,
}

#[tower_lsp::async_trait]
impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let (result, problems) = handlers::initialize::run(&self.session, params);
        for problem in problems {
            self.client.show_message(MessageType::ERROR, problem).await;
        }
        Ok(result)
    }

    async fn initialized(&self, _: InitializedParams) {
        tracing::info!("aidiag {} initialized", env!("CARGO_PKG_VERSION"));
        let settings = self.session.settings();
        if !settings.use_model {
            return;
        }
        // The model is loaded only when something will use it: explanations, fixes, or verdicts under
        // the policy set (or the model's own default, read from its header or its served name).
        let (source, (policy, review)) = match &settings.endpoint {
            Some(endpoint) => (
                model_worker::Source::Server(endpoint.clone()),
                crate::model::judge::resolve_served(settings.model_verdicts, settings.model_review),
            ),
            None => {
                let Some((path, _)) = crate::model::resolve(settings.model_path.as_deref()) else {
                    self.client
                        .show_message(MessageType::WARNING, "aidiag: no model path (neither modelPath, XDG_CACHE_HOME nor HOME is set); the rule checks keep working without the model")
                        .await;
                    return;
                };
                let resolved = crate::model::judge::resolve(
                    &path,
                    settings.model_verdicts,
                    settings.model_review,
                );
                (
                    model_worker::Source::File {
                        path,
                        tokenizer: settings.tokenizer_path.clone(),
                    },
                    resolved,
                )
            }
        };
        if !settings.model_explanations
            && !settings.model_fixes
            && policy == VerdictPolicy::Off
            && !review
        {
            return;
        }
        // A function's model work is wanted while some open document still has that function.
        let weak = Arc::downgrade(&self.session);
        let live = Arc::new(move |hash: u64| {
            weak.upgrade().is_some_and(|s| {
                s.documents
                    .iter()
                    .any(|d| d.functions.functions().iter().any(|f| f.hash == hash))
            })
        });
        let weak = Arc::downgrade(&self.session);
        let client = self.client.clone();
        let republish = Arc::new(move |uri: Option<Url>| {
            let Some(session) = weak.upgrade() else {
                return;
            };
            let uris: Vec<Url> = match uri {
                Some(uri) => vec![uri],
                None => session.documents.iter().map(|d| d.key().clone()).collect(),
            };
            for uri in uris {
                scheduler::schedule_now(session.clone(), client.clone(), uri);
            }
        });
        let hooks = model_worker::Hooks {
            live,
            republish,
            progress: self
                .session
                .work_done_progress
                .load(std::sync::atomic::Ordering::Relaxed),
        };
        let worker = model_worker::ModelWorker::start(
            source,
            settings.shared_cache.clone(),
            policy,
            review,
            self.client.clone(),
            hooks,
        );
        let _ = self.session.model.set(worker);
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let uri = params.text_document.uri.clone();
        match handlers::text_document::did_open(&self.session, params.text_document) {
            Ok(()) => scheduler::schedule(self.session.clone(), self.client.clone(), uri),
            Err(message) => {
                self.client
                    .show_message(MessageType::WARNING, message)
                    .await
            }
        }
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri.clone();
        match handlers::text_document::did_change(&self.session, params) {
            Ok(true) => scheduler::schedule(self.session.clone(), self.client.clone(), uri),
            Ok(false) => {}
            Err(message) => {
                self.client.publish_diagnostics(uri, Vec::new(), None).await;
                self.client
                    .show_message(MessageType::WARNING, message)
                    .await;
            }
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        handlers::text_document::did_close(&self.session, &uri);
        self.client.publish_diagnostics(uri, Vec::new(), None).await;
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let value = params
            .settings
            .get("aidiag")
            .cloned()
            .unwrap_or(params.settings);
        let problems = self
            .session
            .settings
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .update(&value);
        // HEAD is read again for each document with the new settings.
        self.session.baselines.clear();
        for problem in problems {
            self.client.show_message(MessageType::ERROR, problem).await;
        }
    }

    async fn execute_command(
        &self,
        params: ExecuteCommandParams,
    ) -> Result<Option<serde_json::Value>> {
        match handlers::command::run(&self.session, params) {
            Ok((value, after)) => {
                if let handlers::command::After::Check(uri) = after {
                    scheduler::schedule_now(self.session.clone(), self.client.clone(), uri);
                }
                Ok(Some(value))
            }
            Err(message) => Err(tower_lsp::jsonrpc::Error::invalid_params(message)),
        }
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        Ok(handlers::hover::run(&self.session, params))
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let session = self.session.clone();
        // Fixes are verified by re-checking the edited function; that is CPU work, so it runs on
        // the blocking pool rather than on a protocol thread.
        let actions =
            tokio::task::spawn_blocking(move || handlers::code_action::run(&session, params))
                .await
                .unwrap_or_default();
        Ok(Some(actions))
    }
}

/// Serves LSP on stdin/stdout until the client sends `exit`; true when it sent `shutdown` first.
pub fn run_stdio() -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(crate::analysis::rules::ANALYSIS_STACK_BYTES)
        .worker_threads(2)
        .enable_all()
        .build()?;
    let ending = runtime.block_on(async {
        let (service, socket) = LspService::new(|client| Backend {
            client,
            session: Arc::new(Session::new()),
        });
        transport::serve(service, socket).await
    });
    // The stdin reader may still be blocked in a read; do not wait for it.
    runtime.shutdown_background();
    Ok(ending == transport::Ending::Clean)
}

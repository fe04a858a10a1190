//! The one model worker. It owns the engine, takes explanation jobs from a bounded queue, and
//! stores what the model wrote by cache key. Requests never wait for it: a hover shows the rule's
//! text at once and asks for an explanation, which a later hover shows.
//!
//! A job whose function no longer exists in any open document (its hash changed) is dropped
//! before it starts and stopped while it runs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use tower_lsp::lsp_types::MessageType;
use tower_lsp::Client;

use crate::model::engine::Engine;
use crate::model::explain;

/// How many explanation jobs may wait; further requests are dropped (a later hover asks again).
const QUEUE: usize = 32;

#[derive(Clone, Debug)]
pub enum Status {
    Loading,
    Ready { name: String, model_hash: u64 },
    Unavailable,
}

struct Job {
    key: u64,
    function_hash: u64,
    prompt: String,
}

pub struct ModelWorker {
    status: RwLock<Status>,
    explanations: DashMap<u64, String>,
    queued: DashMap<u64, ()>,
    jobs: tokio::sync::mpsc::Sender<Job>,
    /// Model calls made so far (cache misses), for tests and logs.
    pub calls: AtomicU64,
}

impl ModelWorker {
    /// Starts loading the model at `path` and serving jobs. `live` says whether a function hash
    /// still exists in an open document. A model that cannot be loaded is reported once with
    /// `window/showMessage`; the rule checks go on without it.
    pub fn start(
        path: PathBuf,
        client: Client,
        live: Arc<dyn Fn(u64) -> bool + Send + Sync>,
    ) -> Arc<ModelWorker> {
        let (jobs, mut receiver) = tokio::sync::mpsc::channel::<Job>(QUEUE);
        let worker = Arc::new(ModelWorker {
            status: RwLock::new(Status::Loading),
            explanations: DashMap::new(),
            queued: DashMap::new(),
            jobs,
            calls: AtomicU64::new(0),
        });
        let me = worker.clone();
        tokio::spawn(async move {
            let engine = match Engine::load(&path).await {
                Ok(engine) => engine,
                Err(message) => {
                    tracing::warn!("model unavailable: {message}");
                    *me.status.write().unwrap_or_else(|e| e.into_inner()) = Status::Unavailable;
                    client
                        .show_message(MessageType::WARNING, format!("aidiag: {message}. The rule checks keep working without the model."))
                        .await;
                    return;
                }
            };
            tracing::info!(model = %engine.path.display(), "model loaded");
            *me.status.write().unwrap_or_else(|e| e.into_inner()) = Status::Ready {
                name: engine.name.clone(),
                model_hash: engine.file_hash,
            };
            while let Some(job) = receiver.recv().await {
                if me.explanations.contains_key(&job.key) || !live(job.function_hash) {
                    me.queued.remove(&job.key);
                    continue;
                }
                me.calls.fetch_add(1, Ordering::Relaxed);
                let function_hash = job.function_hash;
                let live = live.clone();
                let cancelled = move || !live(function_hash);
                let text = engine
                    .generate(&job.prompt, explain::MAX_TOKENS, explain::STOP, &cancelled)
                    .await;
                if !cancelled() {
                    me.explanations.insert(job.key, text);
                }
                me.queued.remove(&job.key);
            }
        });
        worker
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The explanation stored under `key`, if the model has written it.
    pub fn explanation(&self, key: u64) -> Option<String> {
        self.explanations.get(&key).map(|e| e.clone())
    }

    /// Asks for an explanation unless it exists or is already queued; false when the queue is full.
    pub fn request(&self, key: u64, function_hash: u64, prompt: String) -> bool {
        if self.explanations.contains_key(&key) || self.queued.contains_key(&key) {
            return true;
        }
        let sent = self
            .jobs
            .try_send(Job {
                key,
                function_hash,
                prompt,
            })
            .is_ok();
        if sent {
            self.queued.insert(key, ());
        }
        sent
    }
}

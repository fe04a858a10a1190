//! The one model worker. It owns the model service (engine plus result store) and serves jobs
//! from a bounded queue ordered by priority: an explanation asked for by a hover (or a fix
//! draft asked for by a code-action request) first, then
//! verdicts for the function being edited, then the rest. Requests never wait for it: hovers show
//! the rule's text at once, and diagnostics are published without a verdict and again when it
//! arrives.
//!
//! A job whose function no longer exists in any open document (its hash changed) is dropped
//! before it starts, and an explanation is stopped while it runs. While jobs are pending the
//! client is shown work-done progress (`$/progress`), when it supports it.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use tower_lsp::lsp_types::notification::Progress;
use tower_lsp::lsp_types::request::WorkDoneProgressCreate;
use tower_lsp::lsp_types::{
    MessageType, NumberOrString, ProgressParams, ProgressParamsValue, Url, WorkDoneProgress,
    WorkDoneProgressBegin, WorkDoneProgressCreateParams, WorkDoneProgressEnd,
    WorkDoneProgressReport,
};
use tower_lsp::Client;

use crate::model::engine::Engine;
use crate::model::judge::{Verdict, VerdictPolicy};
use crate::model::remote::{Endpoint, Remote};
use crate::model::review::Review;
use crate::model::service::{Backend, ModelService};
use crate::model::store::{self, Store};
use crate::model::FindingText;

/// How many jobs may wait; when full, a new job replaces the lowest-priority one if it ranks
/// higher, and is dropped otherwise (a later check or hover asks again).
const QUEUE: usize = 32;

/// Job priorities, highest first.
pub const PRIORITY_HOVER: u8 = 2;
pub const PRIORITY_EDITED: u8 = 1;
pub const PRIORITY_OTHER: u8 = 0;

#[derive(Clone, Debug)]
pub enum Status {
    Loading,
    Ready {
        name: String,
        policy: VerdictPolicy,
        review: bool,
    },
    Unavailable,
}

enum Work {
    Explain,
    Draft,
    /// Review the function; republish this document when done.
    Review(Url),
    /// Republish this document when the verdict is in.
    Verdict(Url),
}

struct Job {
    priority: u8,
    /// Earlier jobs first within a priority.
    sequence: u64,
    key: u64,
    function_hash: u64,
    text: FindingText,
    work: Work,
}

impl Job {
    /// A job; its sequence number is given when it is queued.
    fn new(priority: u8, key: u64, function_hash: u64, text: FindingText, work: Work) -> Job {
        Job {
            priority,
            sequence: 0,
            key,
            function_hash,
            text,
            work,
        }
    }
}

impl PartialEq for Job {
    fn eq(&self, other: &Self) -> bool {
        (self.priority, self.sequence) == (other.priority, other.sequence)
    }
}
impl Eq for Job {}
impl PartialOrd for Job {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Job {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.priority
            .cmp(&other.priority)
            .then(other.sequence.cmp(&self.sequence))
    }
}

#[derive(Default)]
struct Queue {
    jobs: BinaryHeap<Job>,
    keys: HashSet<u64>,
    sequence: u64,
}

pub struct ModelWorker {
    status: RwLock<Status>,
    service: std::sync::OnceLock<Arc<ModelService>>,
    queue: Mutex<Queue>,
    /// The function being edited whose verdict prompt to start ahead (`ModelService::warm_verdicts`):
    /// its hash and code, the latest edit only. Run when no job of the edited functions or of a
    /// hover waits; a newer edit, or a hover's job, stops a running one between its steps.
    ahead: Mutex<Option<(u64, String)>>,
    /// Per document, the names of the functions whose findings the model judged at the last
    /// check: an edit of one of them starts its next verdict prompt ahead.
    judged: Mutex<HashMap<Url, HashSet<String>>>,
    wake: tokio::sync::Notify,
}

/// What the worker does next.
enum Next {
    Job(Box<Job>, usize),
    Ahead(u64, String),
}

/// Where the model runs.
pub enum Source {
    /// In this process, from a GGUF file (and a `tokenizer.json` for files without one inside).
    File {
        path: PathBuf,
        tokenizer: Option<PathBuf>,
    },
    /// On a server (`model.endpoint`, the `endpoint` setting).
    Server(Endpoint),
}

/// What the worker needs from the session.
pub struct Hooks {
    /// Whether a function hash still exists in an open document.
    pub live: Arc<dyn Fn(u64) -> bool + Send + Sync>,
    /// Called when a verdict for a finding in this document is in (`None`: every open document,
    /// when the model is ready).
    pub republish: Arc<dyn Fn(Option<Url>) + Send + Sync>,
    /// Whether the client accepts work-done progress.
    pub progress: bool,
}

impl ModelWorker {
    /// Starts loading the model at `path` and serving jobs, under the verdict `policy` and with
    /// reviews on or off (`judge::resolve` decides both). A model that cannot be loaded is
    /// reported once with `window/showMessage`; the rule checks go on without it.
    pub fn start(
        source: Source,
        shared_cache: Option<PathBuf>,
        policy: VerdictPolicy,
        review: bool,
        client: Client,
        hooks: Hooks,
    ) -> Arc<ModelWorker> {
        let worker = Arc::new(ModelWorker {
            status: RwLock::new(Status::Loading),
            service: std::sync::OnceLock::new(),
            queue: Mutex::new(Queue::default()),
            ahead: Mutex::new(None),
            judged: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
        });
        let me = worker.clone();
        tokio::spawn(async move {
            let backend: Result<Backend, String> = match &source {
                Source::File { path, tokenizer } => {
                    Engine::load_with(path, tokenizer.as_deref())
                        .await
                        .map(|engine| {
                            tracing::info!(model = %engine.path.display(), weights = %engine.weights.display(), "model loaded");
                            engine.into()
                        })
                }
                Source::Server(endpoint) => Remote::connect(endpoint).await.map(|remote| {
                    tracing::info!(model = %remote.name, "model server connected");
                    remote.into()
                }),
            };
            let backend = match backend {
                Ok(backend) => backend,
                Err(message) => {
                    tracing::warn!("model unavailable: {message}");
                    *me.status.write().unwrap_or_else(|e| e.into_inner()) = Status::Unavailable;
                    client
                        .show_message(MessageType::WARNING, format!("aidiag: {message}. The rule checks keep working without the model."))
                        .await;
                    return;
                }
            };
            let name = backend.name().to_owned();
            let shared = shared_cache.is_some();
            let service = Arc::new(ModelService::new(
                backend,
                Store::shared(
                    shared_cache.or_else(store::default_dir),
                    store::DISK_ENTRIES,
                    shared,
                ),
            ));
            let _ = me.service.set(service.clone());
            *me.status.write().unwrap_or_else(|e| e.into_inner()) = Status::Ready {
                name,
                policy,
                review,
            };
            // Documents checked while the model was loading get their model work asked for now.
            if policy != VerdictPolicy::Off || review {
                (hooks.republish)(None);
            }
            me.serve(service, client, hooks).await;
        });
        worker
    }

    async fn serve(&self, service: Arc<ModelService>, client: Client, hooks: Hooks) {
        let token = NumberOrString::String("aidiag/model".to_owned());
        let mut progress_open = false;
        let mut done = 0u32;
        loop {
            let next = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let urgent = queue
                    .jobs
                    .peek()
                    .is_some_and(|job| job.priority >= PRIORITY_EDITED);
                let ahead = if urgent {
                    None
                } else {
                    self.ahead.lock().unwrap_or_else(|e| e.into_inner()).take()
                };
                match ahead {
                    Some((hash, code)) => Some(Next::Ahead(hash, code)),
                    None => queue.jobs.pop().map(|job| {
                        queue.keys.remove(&job.key);
                        Next::Job(Box::new(job), queue.jobs.len())
                    }),
                }
            };
            let (job, left) = match next {
                Some(Next::Job(job, left)) => (Some(*job), left),
                Some(Next::Ahead(hash, code)) => {
                    if (hooks.live)(hash) {
                        // A newer edit or a hover's job ends it between steps; what it has
                        // computed is kept.
                        let stop = || {
                            self.ahead
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .is_some()
                                || self
                                    .queue
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .jobs
                                    .peek()
                                    .is_some_and(|job| job.priority >= PRIORITY_HOVER)
                        };
                        service.warm_verdicts(&code, &stop).await;
                    }
                    continue;
                }
                None => (None, 0),
            };
            let Some(job) = job else {
                if progress_open {
                    progress_open = false;
                    done = 0;
                    let end = WorkDoneProgress::End(WorkDoneProgressEnd { message: None });
                    send_progress(&client, &token, end).await;
                }
                self.wake.notified().await;
                continue;
            };
            if !(hooks.live)(job.function_hash) {
                continue;
            }
            if hooks.progress {
                let message = Some(format!("{} left", left + 1));
                let value = if progress_open {
                    WorkDoneProgress::Report(WorkDoneProgressReport {
                        message,
                        percentage: Some((100 * done / (done + left as u32 + 1)).min(100)),
                        cancellable: Some(false),
                    })
                } else {
                    // A client that claims the capability but never answers must not stall
                    // the model: give it five seconds.
                    let create = client.send_request::<WorkDoneProgressCreate>(
                        WorkDoneProgressCreateParams {
                            token: token.clone(),
                        },
                    );
                    progress_open = matches!(
                        tokio::time::timeout(std::time::Duration::from_secs(5), create).await,
                        Ok(Ok(()))
                    );
                    WorkDoneProgress::Begin(WorkDoneProgressBegin {
                        title: "aidiag: local model".to_owned(),
                        message,
                        percentage: Some(0),
                        cancellable: Some(false),
                    })
                };
                if progress_open {
                    send_progress(&client, &token, value).await;
                }
            }
            let started = std::time::Instant::now();
            let kind = match &job.work {
                Work::Explain => "explanation",
                Work::Draft => "draft",
                Work::Review(_) => "review",
                Work::Verdict(_) => "verdict",
            };
            let priority = job.priority;
            let live = hooks.live.clone();
            let function_hash = job.function_hash;
            let cancelled = move || !live(function_hash);
            match job.work {
                Work::Explain => {
                    service
                        .explanation(function_hash, &job.text, &cancelled)
                        .await;
                }
                Work::Draft => {
                    service.draft(function_hash, &job.text, &cancelled).await;
                }
                // Published again only when the answer is in: a server that did not answer
                // leaves nothing stored, and publishing would only ask again at once.
                Work::Review(uri) => {
                    service
                        .review(function_hash, &job.text.function, &cancelled)
                        .await;
                    if service
                        .cached_review(service.review_key(function_hash))
                        .is_some()
                    {
                        (hooks.republish)(Some(uri));
                    }
                }
                Work::Verdict(uri) => {
                    service.verdict(function_hash, &job.text).await;
                    if service
                        .cached_verdict(service.verdict_key(function_hash, &job.text))
                        .is_some()
                    {
                        (hooks.republish)(Some(uri));
                    }
                }
            }
            if let Some(message) = service.backend.notice() {
                client
                    .show_message(MessageType::WARNING, format!("aidiag: {message}."))
                    .await;
            }
            tracing::debug!(
                kind,
                priority,
                left,
                ms = started.elapsed().as_millis() as u64,
                "model job done"
            );
            done += 1;
        }
    }

    pub fn status(&self) -> Status {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The explanation for this finding if it is written; otherwise asks for it (unless the
    /// queue is full) and returns `None`.
    pub fn explanation(&self, function_hash: u64, text: FindingText) -> Option<String> {
        let service = self.service.get()?;
        let key = service.explanation_key(function_hash, &text);
        let job = Job::new(PRIORITY_HOVER, key, function_hash, text, Work::Explain);
        self.stored_or_asked(service.cached_explanation(key), job)
    }

    /// The model's draft of a fixed function for this finding if it is written (empty: it wrote
    /// none); otherwise asks for it and returns `None`.
    pub fn draft(&self, function_hash: u64, text: FindingText) -> Option<String> {
        let service = self.service.get()?;
        let key = service.draft_key(function_hash, &text);
        let job = Job::new(PRIORITY_HOVER, key, function_hash, text, Work::Draft);
        self.stored_or_asked(service.store.get(key), job)
    }

    /// The model's review of the function `text.function` if it is done (`Some(None)`: it found
    /// nothing); otherwise asks for it and returns `None`.
    pub fn review(
        &self,
        function_hash: u64,
        text: FindingText,
        uri: &Url,
        priority: u8,
    ) -> Option<Option<Review>> {
        let service = self.service.get()?;
        let key = service.review_key(function_hash);
        let job = Job::new(
            priority,
            key,
            function_hash,
            text,
            Work::Review(uri.clone()),
        );
        self.stored_or_asked(service.cached_review(key), job)
    }

    /// The verdict on this finding if the model has given it (`Some(None)`: it abstained);
    /// otherwise asks for it and returns `None`.
    pub fn verdict(
        &self,
        function_hash: u64,
        text: FindingText,
        uri: &Url,
        priority: u8,
    ) -> Option<Option<Verdict>> {
        let service = self.service.get()?;
        let key = service.verdict_key(function_hash, &text);
        let job = Job::new(
            priority,
            key,
            function_hash,
            text,
            Work::Verdict(uri.clone()),
        );
        self.stored_or_asked(service.cached_verdict(key), job)
    }

    /// Remembers which functions of `uri` had findings the model judges (by name, which an
    /// edit of the body keeps): editing one of them starts its next verdict prompt ahead.
    pub fn set_judged(&self, uri: &Url, names: HashSet<String>) {
        let mut judged = self.judged.lock().unwrap_or_else(|e| e.into_inner());
        if names.is_empty() {
            judged.remove(uri);
        } else {
            judged.insert(uri.clone(), names);
        }
    }

    /// The document is closed: nothing of it is started ahead any more.
    pub fn forget(&self, uri: &Url) {
        self.set_judged(uri, HashSet::new());
    }

    /// The function `name` of `uri` was just edited (now `function_hash`, with the code
    /// `code()`): if the model judged its findings at the last check, the verdict prompt's
    /// start (the system turn and the new code) is computed while the debounce runs, so the
    /// verdict computes only its report. Only the latest edit waits; a job of the edited
    /// functions or of a hover goes first.
    pub fn edited(&self, uri: &Url, name: &str, function_hash: u64, code: impl FnOnce() -> String) {
        if self.service.get().is_none() || name.is_empty() {
            return;
        }
        let judged = self
            .judged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uri)
            .is_some_and(|names| names.contains(name));
        if !judged {
            return;
        }
        *self.ahead.lock().unwrap_or_else(|e| e.into_inner()) = Some((function_hash, code()));
        self.wake.notify_one();
    }

    /// `stored` if there is something; otherwise queues `job` (unless the queue is full) and
    /// returns `None`.
    fn stored_or_asked<T>(&self, stored: Option<T>, job: Job) -> Option<T> {
        if stored.is_none() {
            self.enqueue(job);
        }
        stored
    }

    fn enqueue(&self, mut job: Job) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.keys.contains(&job.key) {
            return;
        }
        if queue.jobs.len() >= QUEUE {
            // Make room by dropping the lowest-ranked job, if the new one ranks above it.
            let mut jobs = std::mem::take(&mut queue.jobs).into_sorted_vec();
            if jobs
                .first()
                .is_some_and(|lowest| lowest.priority < job.priority)
            {
                let dropped = jobs.remove(0);
                queue.keys.remove(&dropped.key);
                queue.jobs = jobs.into();
            } else {
                queue.jobs = jobs.into();
                return;
            }
        }
        queue.sequence += 1;
        job.sequence = queue.sequence;
        queue.keys.insert(job.key);
        queue.jobs.push(job);
        drop(queue);
        self.wake.notify_one();
    }
}

async fn send_progress(client: &Client, token: &NumberOrString, value: WorkDoneProgress) {
    client
        .send_notification::<Progress>(ProgressParams {
            token: token.clone(),
            value: ProgressParamsValue::WorkDone(value),
        })
        .await;
}

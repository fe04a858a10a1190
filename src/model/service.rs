//! The model's work behind one cache: verdicts on findings and explanations, each computed once
//! per (function, finding, weights, prompt) and then read from the store, in memory or on disk.
//! Used by the server's worker and by the CLI alike.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::analysis::{Finding, Severity};

use super::engine::Engine;
use super::judge::{self, Verdict, VerdictPolicy};
use super::remote::{Failure, Remote};
use super::review::{self, Review};
use super::store::Store;
use super::{draft, explain, FindingText};

/// What runs the prompts: the model in this process, or a server on the team's network.
pub enum Backend {
    Local(Engine),
    Remote(Remote),
}

impl From<Engine> for Backend {
    fn from(engine: Engine) -> Backend {
        Backend::Local(engine)
    }
}

impl From<Remote> for Backend {
    fn from(remote: Remote) -> Backend {
        Backend::Remote(remote)
    }
}

impl Backend {
    /// The model's name, as the notes show it.
    pub fn name(&self) -> &str {
        match self {
            Backend::Local(engine) => &engine.name,
            Backend::Remote(remote) => &remote.name,
        }
    }

    /// The model's part of every cache key: the weights that run here, or the served model's
    /// name.
    pub fn key_hash(&self) -> u64 {
        match self {
            Backend::Local(engine) => engine.file_hash,
            Backend::Remote(remote) => remote.key_hash(),
        }
    }

    /// How many tokens `text` is: counted by the local tokenizer, estimated (three bytes a
    /// token, about right for C with a BPE tokenizer) for a server.
    pub fn token_count(&self, text: &str) -> usize {
        match self {
            Backend::Local(engine) => engine.token_count(text),
            Backend::Remote(_) => text.len().div_ceil(3),
        }
    }

    /// The one message to show when a server stopped answering, the first time it is asked.
    pub fn notice(&self) -> Option<String> {
        match self {
            Backend::Local(_) => None,
            Backend::Remote(remote) => remote
                .breaker
                .notice()
                .map(|why| format!("the model server stopped answering ({why}); the rule findings are reported without its verdicts until it answers again")),
        }
    }

    /// How many prompts may usefully run at once: one for the engine here, many for a server
    /// that batches them.
    pub fn parallel(&self) -> bool {
        matches!(self, Backend::Remote(_))
    }

    async fn choose(
        &self,
        prefix: &str,
        rest: &str,
        choices: &[&str],
    ) -> Result<Option<(usize, f32)>, Failure> {
        match self {
            Backend::Local(engine) => Ok(engine.choose(prefix, rest, choices).await),
            Backend::Remote(remote) => remote.choose(&format!("{prefix}{rest}"), choices).await,
        }
    }

    async fn generate(
        &self,
        prompt: &str,
        max_tokens: usize,
        stop: &str,
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<String, Failure> {
        match self {
            Backend::Local(engine) => {
                Ok(engine.generate(prompt, max_tokens, stop, cancelled).await)
            }
            Backend::Remote(remote) => {
                // The request is dropped (and the connection closed) when the caller cancels.
                let request = remote.generate(prompt, max_tokens, stop);
                tokio::pin!(request);
                loop {
                    tokio::select! {
                        answer = &mut request => return answer,
                        () = tokio::time::sleep(std::time::Duration::from_millis(50)) => {
                            if cancelled() {
                                return Ok(String::new());
                            }
                        }
                    }
                }
            }
        }
    }
}

pub struct ModelService {
    pub backend: Backend,
    pub store: Store,
    /// Model calls made (cache misses), for tests and logs.
    pub calls: AtomicU64,
}

/// A verdict as stored: `None` when the model abstained.
fn encode(verdict: Option<Verdict>) -> String {
    serde_json::to_string(&verdict).unwrap_or_default()
}

impl ModelService {
    pub fn new(backend: impl Into<Backend>, store: Store) -> ModelService {
        ModelService {
            backend: backend.into(),
            store,
            calls: AtomicU64::new(0),
        }
    }

    /// Prompt tokens the local engine has run so far (0 for a server).
    fn computed(&self) -> usize {
        match &self.backend {
            Backend::Local(engine) => engine.computed.load(Ordering::Relaxed),
            Backend::Remote(_) => 0,
        }
    }

    pub fn verdict_key(&self, function_hash: u64, text: &FindingText) -> u64 {
        judge::key(
            function_hash,
            text.rule,
            &text.message,
            self.backend.key_hash(),
        )
    }

    pub fn explanation_key(&self, function_hash: u64, text: &FindingText) -> u64 {
        explain::key(
            function_hash,
            text.rule,
            &text.message,
            self.backend.key_hash(),
        )
    }

    /// The stored verdict: `None` when not judged yet, `Some(None)` when the model abstained.
    pub fn cached_verdict(&self, key: u64) -> Option<Option<Verdict>> {
        self.store
            .get(key)
            .and_then(|v| serde_json::from_str::<Option<Verdict>>(&v).ok())
            // An entry with a confidence that is not a probability is asked again.
            .filter(|v| v.as_ref().is_none_or(Verdict::is_valid))
    }

    /// Judges a finding: from the store, or by asking the model (constrained to yes or no).
    pub async fn verdict(&self, function_hash: u64, text: &FindingText) -> Option<Verdict> {
        let key = self.verdict_key(function_hash, text);
        if let Some(stored) = self.cached_verdict(key) {
            return stored;
        }
        let Ok(verdict) = self.asked(text, judge::Question::Report).await else {
            // Not answered is not an abstention: nothing is stored, and the next check asks
            // again.
            return None;
        };
        self.store.put(key, encode(verdict));
        verdict
    }

    /// Asks `question` about a finding, without the store (`aidiag eval --judge`, which
    /// compares prompts the store's keys do not tell apart).
    pub async fn ask(&self, text: &FindingText, question: judge::Question) -> Option<Verdict> {
        self.asked(text, question).await.ok().flatten()
    }

    /// The model's answer; `Err` when it was not answered (a server down), `Ok(None)` when the
    /// model abstained.
    async fn asked(
        &self,
        text: &FindingText,
        question: judge::Question,
    ) -> Result<Option<Verdict>, ()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (system, rest) = judge::asked(text, question);
        let started = std::time::Instant::now();
        let computed = self.computed();
        let verdict = match self.backend.choose(system, &rest, &judge::CHOICES).await {
            Ok(answer) => answer.map(|(choice, confidence)| Verdict {
                real: choice == 0,
                confidence,
            }),
            Err(_) => return Err(()),
        };
        tracing::debug!(
            prompt_tokens = self.backend.token_count(&(system.to_owned() + &rest)),
            // Tokens the local engine ran (0 for a server): what kept prompts saved shows here.
            computed_tokens = self.computed().saturating_sub(computed),
            ms = started.elapsed().as_millis() as u64,
            "verdict asked"
        );
        Ok(verdict)
    }

    /// Runs the start of the verdict prompts about `function` (its code, before any report)
    /// ahead of the verdicts, so that they compute only their reports (`Engine::warm`); stops
    /// between steps when `stop` says so.
    pub async fn warm_verdicts(&self, function: &str, stop: &(dyn Fn() -> bool + Send + Sync)) {
        let Backend::Local(engine) = &self.backend else {
            // A server keeps its own prompt cache.
            return;
        };
        let (system, code) = judge::code_parts(function);
        let started = std::time::Instant::now();
        match engine.warm(system, &code, stop).await {
            Ok(computed) => tracing::debug!(
                computed_tokens = computed,
                ms = started.elapsed().as_millis() as u64,
                "verdict prompt started ahead"
            ),
            Err(e) => tracing::warn!("the model could not run the prompt: {e}"),
        }
    }

    pub fn draft_key(&self, function_hash: u64, text: &FindingText) -> u64 {
        draft::key(
            function_hash,
            text.rule,
            &text.message,
            self.backend.key_hash(),
        )
    }

    /// The model's rewrite of the function for this finding (the code only; empty when it wrote
    /// none), from the store or by asking the model. `None` when cancelled. The draft still has
    /// to pass `draft::verified_fix` before it is offered.
    pub async fn draft(
        &self,
        function_hash: u64,
        text: &FindingText,
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> Option<String> {
        let key = self.draft_key(function_hash, text);
        if let Some(stored) = self.store.get(key) {
            return Some(stored);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let budget = draft::max_tokens(self.backend.token_count(&text.function));
        let written = self
            .backend
            .generate(&draft::prompt(text), budget, draft::FENCE, cancelled)
            .await;
        let Ok(written) = written else { return None };
        if cancelled() {
            return None;
        }
        let code = draft::extract(&written).to_owned();
        self.store.put(key, code.clone());
        Some(code)
    }

    pub fn review_key(&self, function_hash: u64) -> u64 {
        review::key(function_hash, self.backend.key_hash())
    }

    /// The stored review of a function: `None` when not reviewed yet, `Some(None)` when the
    /// model found nothing (or nothing that validates the class step).
    pub fn cached_review(&self, key: u64) -> Option<Option<Review>> {
        self.store
            .get(key)
            .and_then(|v| serde_json::from_str::<Option<Review>>(&v).ok())
            .filter(|r| r.as_ref().is_none_or(Review::is_valid))
    }

    /// Reviews a function (class, then code, then message, each constrained or bounded), or
    /// reads the stored review. `None` when the model found nothing or was cancelled.
    pub async fn review(
        &self,
        function_hash: u64,
        function: &str,
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> Option<Review> {
        let key = self.review_key(function_hash);
        if let Some(stored) = self.cached_review(key) {
            return stored;
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let words: Vec<&str> = review::CLASSES.iter().map(|c| c.0).collect();
        let result = async {
            let (system, question) = review::class_prompt_parts(function);
            let Some((choice, confidence)) =
                self.backend.choose(&system, &question, &words).await?
            else {
                return Ok(None);
            };
            let class = words[choice];
            if class == "none" || cancelled() {
                return Ok(None);
            }
            let code = self
                .backend
                .generate(
                    &review::code_prompt(function, class),
                    review::CODE_TOKENS,
                    "```",
                    cancelled,
                )
                .await?;
            let code = review::clean_code(&code);
            if code.is_empty() || cancelled() {
                return Ok(None);
            }
            let message = self
                .backend
                .generate(
                    &review::message_prompt(function, class, &code),
                    review::MESSAGE_TOKENS,
                    explain::STOP,
                    cancelled,
                )
                .await?;
            Ok::<_, Failure>(Some(Review {
                class: class.to_owned(),
                confidence,
                code,
                message: review::clean_message(&message),
            }))
        }
        .await;
        // A review the server did not finish is not stored: the next check asks again.
        let Ok(result) = result else { return None };
        if cancelled() {
            return None;
        }
        self.store
            .put(key, serde_json::to_string(&result).unwrap_or_default());
        result
    }

    pub fn cached_explanation(&self, key: u64) -> Option<String> {
        self.store.get(key)
    }

    /// Writes an explanation, or reads it from the store. `None` when cancelled.
    pub async fn explanation(
        &self,
        function_hash: u64,
        text: &FindingText,
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> Option<String> {
        let key = self.explanation_key(function_hash, text);
        if let Some(stored) = self.store.get(key) {
            return Some(stored);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let prompt = explain::prompt(text);
        let written = self
            .backend
            .generate(&prompt, explain::MAX_TOKENS, explain::STOP, cancelled)
            .await;
        let Ok(written) = written else { return None };
        if cancelled() {
            return None;
        }
        let written = explain::finish(&written);
        self.store.put(key, written.clone());
        Some(written)
    }
}

/// Applies a verdict to a finding under `policy`; returns false when the finding is dropped.
/// Only a rejection with at least `judge::REJECT_CONFIDENCE` changes a finding's severity, and
/// the message always says what the model did.
pub fn apply(
    finding: &mut Finding,
    verdict: Option<Verdict>,
    policy: VerdictPolicy,
    model: &str,
) -> bool {
    let Some(verdict) = verdict else { return true };
    if policy == VerdictPolicy::Off {
        return true;
    }
    let confident_rejection = !verdict.real && verdict.confidence >= judge::REJECT_CONFIDENCE;
    let note = judge::note(&verdict, model);
    match policy {
        VerdictPolicy::Drop if confident_rejection => return false,
        VerdictPolicy::Demote if confident_rejection => {
            finding.severity = finding.severity.min(Severity::Information);
            finding.message = std::mem::take(&mut finding.message)
                .text(format!(" (shown as information: {note})"));
        }
        _ => {
            finding.message = std::mem::take(&mut finding.message).text(format!(" ({note})"));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{ByteRange, Message, Origin};

    fn finding() -> Finding {
        Finding {
            rule: "leak-on-error",
            severity: Severity::Warning,
            origin: Origin::Rule,
            confidence: 0.9,
            range: ByteRange::new(0, 1),
            message: Message::new().text("`buf` leaks"),
            related: Vec::new(),
            fixes: Vec::new(),
        }
    }

    fn render(f: &Finding) -> String {
        f.message.render(&|_| 0)
    }

    #[test]
    fn only_a_confident_rejection_changes_a_finding_and_only_when_the_policy_allows() {
        let no = Some(Verdict {
            real: false,
            confidence: 0.93,
        });
        let unsure = Some(Verdict {
            real: false,
            confidence: 0.6,
        });
        let mut f = finding();
        assert!(apply(&mut f, no, VerdictPolicy::Off, "m"));
        assert_eq!(
            (f.severity, render(&f)),
            (Severity::Warning, "`buf` leaks".into())
        );

        let mut f = finding();
        assert!(apply(&mut f, no, VerdictPolicy::Annotate, "m"));
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(
            render(&f),
            "`buf` leaks (the local model (m) judged this report wrong (p = 0.93))"
        );

        let mut f = finding();
        assert!(apply(&mut f, no, VerdictPolicy::Demote, "m"));
        assert_eq!(f.severity, Severity::Information);
        assert!(render(&f).contains("shown as information"));

        let mut f = finding();
        assert!(apply(&mut f, unsure, VerdictPolicy::Demote, "m"));
        assert_eq!(f.severity, Severity::Warning);

        assert!(!apply(&mut finding(), no, VerdictPolicy::Drop, "m"));
        assert!(apply(&mut finding(), unsure, VerdictPolicy::Drop, "m"));
        assert!(apply(&mut finding(), None, VerdictPolicy::Drop, "m"));
    }
}

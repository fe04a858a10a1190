//! The model's part of `aidiag check` and `aidiag eval`: verdicts on the findings of the rules
//! that need judgement, applied under the per-model policy, and the review pass (model findings
//! at information severity). The model is loaded only when one of them is on; a model that cannot be loaded gives one warning and the rule findings
//! are reported as they are.

use std::io::Write;
use std::path::PathBuf;

use crate::analysis::{functions, syntax};
use crate::model::judge::{self, VerdictPolicy};
use crate::model::remote::{Endpoint, Remote};
use crate::model::service::{self, Backend, ModelService};
use crate::model::store::{self, Store};
use crate::model::{engine::Engine, FindingText};
use futures_util::StreamExt;

use super::FileReport;

/// How the CLI uses the model.
#[derive(Clone, Debug, Default)]
pub struct ModelOptions {
    /// `--no-model`: rules only.
    pub disabled: bool,
    /// `--model PATH`; the default model when `None`.
    pub path: Option<PathBuf>,
    /// A `tokenizer.json` for a GGUF without a BPE tokenizer inside (from `.aidiag.toml`).
    pub tokenizer: Option<PathBuf>,
    /// `--no-cache`: neither read nor write stored model results (the prepared weights are
    /// still used), so that real model work can be timed.
    pub no_cache: bool,
    /// `--verdicts`; the model's own default policy when `None`.
    pub verdicts: Option<VerdictPolicy>,
    /// `--review on|off`: the model looks at every function for bugs outside the rules
    /// (findings at information severity); the model's own default when `None`.
    pub review: Option<bool>,
    /// `--endpoint` / `model.endpoint`: a server runs the model instead of this process.
    pub endpoint: Option<Endpoint>,
    /// `cache.shared`: the result store a team shares.
    pub shared_cache: Option<PathBuf>,
    /// `--jobs`: verdicts in flight at once (a server only; the local model takes one at a time).
    pub jobs: usize,
}

/// What the model did, for the report's footer and for `eval`'s engine name.
pub struct ModelRun {
    pub name: String,
    pub policy: VerdictPolicy,
    pub judged: usize,
    /// Functions reviewed, and the model findings that validated.
    pub reviewed: usize,
    pub model_findings: usize,
    pub calls: u64,
}

/// Applies the model's verdicts to `reports` in place. Returns what ran, or `None` when the
/// model was not used (disabled, policy off, or not loadable or reachable: then one warning says
/// why).
pub fn apply(
    options: &ModelOptions,
    reports: &mut [FileReport],
    stderr: &mut dyn Write,
) -> Option<ModelRun> {
    if options.disabled {
        return None;
    }
    // What the model is decides its default policy; for a server, its served name.
    let (policy, review, path) = match &options.endpoint {
        Some(_) => {
            let (policy, review) = judge::resolve_served(options.verdicts, options.review);
            (policy, review, None)
        }
        None => {
            let (path, _) = crate::model::resolve(options.path.as_deref())?;
            let (policy, review) = judge::resolve(&path, options.verdicts, options.review);
            (policy, review, Some(path))
        }
    };
    if policy == VerdictPolicy::Off && !review {
        return None;
    }
    let (runtime, service) = open(options, path, stderr)?;
    let jobs = if service.backend.parallel() {
        options.jobs.max(1)
    } else {
        1
    };
    let notice = std::sync::Mutex::new(None);
    let tell = |service: &ModelService| {
        if let Some(message) = service.backend.notice() {
            *notice.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
        }
    };

    // The verdicts, asked `jobs` at a time (a server batches what is in flight), then applied in
    // the findings' order.
    let mut asked = Vec::new();
    let mut texts = Vec::new();
    for (r, report) in reports.iter().enumerate() {
        if policy == VerdictPolicy::Off {
            break;
        }
        let parse = syntax::parse(&report.text, None);
        let index = functions::FunctionIndex::build(&parse.tree, report.text.as_str());
        let lines = syntax::LineIndex::new(&report.text);
        let line_of = |o: usize| lines.line(o);
        for (f, finding) in report.findings.iter().enumerate() {
            if !judge::JUDGED_RULES.contains(&finding.rule) {
                continue;
            }
            let Some(function) = index.at(finding.range.start) else {
                continue;
            };
            let code = report.text[function.range.start..function.range.end].to_owned();
            let first_line = lines.line(function.range.start);
            asked.push((r, f));
            texts.push((
                function.hash,
                FindingText::new(finding, code, first_line, &line_of),
            ));
        }
    }
    let verdicts: Vec<Option<judge::Verdict>> = runtime.block_on(async {
        let mut answers: Vec<(usize, Option<judge::Verdict>)> =
            futures_util::stream::iter(texts.iter().enumerate())
                .map(|(i, (hash, text))| {
                    let service = &service;
                    async move { (i, service.verdict(*hash, text).await) }
                })
                .buffer_unordered(jobs)
                .inspect(|_| tell(&service))
                .collect()
                .await;
        answers.sort_by_key(|(i, _)| *i);
        answers.into_iter().map(|(_, v)| v).collect()
    });
    let judged = verdicts.len();
    let mut verdict_of: std::collections::HashMap<(usize, usize), Option<judge::Verdict>> =
        asked.into_iter().zip(verdicts).collect();
    let name = service.backend.name().to_owned();

    let (mut reviewed, mut model_findings) = (0, 0);
    for (r, report) in reports.iter_mut().enumerate() {
        let mut kept = Vec::with_capacity(report.findings.len());
        for (f, mut finding) in std::mem::take(&mut report.findings).into_iter().enumerate() {
            let keep = match verdict_of.remove(&(r, f)) {
                Some(verdict) => service::apply(&mut finding, verdict, policy, &name),
                None => true,
            };
            if keep {
                kept.push(finding);
            }
        }
        if review {
            let parse = syntax::parse(&report.text, None);
            let index = functions::FunctionIndex::build(&parse.tree, report.text.as_str());
            for function in index.functions() {
                let code = &report.text[function.range.start..function.range.end];
                reviewed += 1;
                let found = runtime.block_on(service.review(function.hash, code, &|| false));
                tell(&service);
                if let Some(finding) = found.and_then(|r| {
                    crate::model::review::to_finding(&r, code, function.range.start, &name)
                }) {
                    model_findings += 1;
                    kept.push(finding);
                }
            }
            kept.sort_by_key(|f| f.range.start);
        }
        report.findings = kept;
    }
    if let Some(message) = notice.into_inner().unwrap_or_else(|e| e.into_inner()) {
        let _ = writeln!(stderr, "aidiag: warning: {message}");
    }
    Some(ModelRun {
        name,
        policy,
        judged,
        reviewed,
        model_findings,
        calls: service.calls.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Starts the model the options name (the server at `options.endpoint`, or the file at `path`)
/// behind the result store; `None` after one warning that says why it cannot be used.
pub fn open(
    options: &ModelOptions,
    path: Option<PathBuf>,
    stderr: &mut dyn Write,
) -> Option<(tokio::runtime::Runtime, ModelService)> {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(crate::analysis::rules::ANALYSIS_STACK_BYTES)
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = writeln!(stderr, "aidiag: warning: cannot start the model: {error}");
            return None;
        }
    };
    let backend: Result<Backend, String> = match (&options.endpoint, path) {
        (Some(endpoint), _) => runtime
            .block_on(Remote::connect(endpoint))
            .map(Backend::from),
        (None, Some(path)) => runtime
            .block_on(Engine::load_with(&path, options.tokenizer.as_deref()))
            .map(Backend::from),
        (None, None) => return None,
    };
    let backend = match backend {
        Ok(backend) => backend,
        Err(message) => {
            let _ = writeln!(
                stderr,
                "aidiag: warning: {message}; reporting the rule findings without the model's verdicts"
            );
            return None;
        }
    };
    let dir = options.shared_cache.clone().or_else(store::default_dir);
    let store = if options.no_cache {
        Store::new(None, 1)
    } else {
        Store::shared(dir, store::DISK_ENTRIES, options.shared_cache.is_some())
    };
    let service = ModelService::new(backend, store);
    Some((runtime, service))
}

impl ModelOptions {
    /// Fills what the command line left open from the project file (`.aidiag.toml`).
    pub fn with_project(mut self, project: &crate::config::ProjectConfig) -> ModelOptions {
        self.disabled |= project.model_enabled == Some(false);
        self.path = self.path.or_else(|| project.model_path.clone());
        self.tokenizer = self.tokenizer.or_else(|| project.tokenizer_path.clone());
        self.verdicts = self.verdicts.or(project.verdicts);
        self.review = self.review.or(project.review);
        // `--endpoint URL` replaces the file's URL and keeps its other endpoint settings.
        self.endpoint = match (self.endpoint, &project.endpoint) {
            (Some(cli), Some(file)) => Some(Endpoint {
                url: cli.url,
                model: cli.model.or_else(|| file.model.clone()),
                ..file.clone()
            }),
            (cli, file) => cli.or_else(|| file.clone()),
        };
        self.shared_cache = self.shared_cache.or_else(|| project.shared_cache.clone());
        self
    }
}

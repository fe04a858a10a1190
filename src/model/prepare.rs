//! The fast path: a copy of the model whose weights candle can multiply with SIMD kernels.
//!
//! candle 0.8.4 has AVX kernels for Q4_0, Q8_0 and the K-quants, but none for Q4_1, Q5_0 or
//! Q5_1, which then run a scalar loop. The default model is Q4_1. Before loading, such weights are
//! requantized to Q8_0 once and the result is kept next to the model cache
//! (`<cache>/prepared/`), keyed by the original file's hash; later loads reuse it. Q8_0 keeps 8
//! bits per weight, so requantizing 4- or 5-bit values loses little (each Q4_1 block of 32
//! becomes one Q8_0 block of 32 with its own scale).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::Device;

/// Bump when the prepared file's content changes for the same input.
const PREPARE_VERSION: u32 = 1;

/// The weight types with no SIMD kernel in candle 0.8.4.
fn needs_requantization(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// Whether any weight in the file at `path` would run without a SIMD kernel.
pub fn is_needed(path: &Path) -> Result<bool, String> {
    let mut reader = BufReader::new(
        File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?,
    );
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|e| format!("{} is not a GGUF file candle can read: {e}", path.display()))?;
    Ok(content
        .tensor_infos
        .values()
        .any(|info| needs_requantization(info.ggml_dtype)))
}

/// Where the prepared copy of a model with hash `file_hash` lives.
pub fn prepared_path(cache_dir: &Path, original: &Path, file_hash: u64) -> PathBuf {
    let stem = original
        .file_stem()
        .map_or_else(|| "model".to_owned(), |s| s.to_string_lossy().into_owned());
    cache_dir.join("prepared").join(format!(
        "{stem}.{file_hash:016x}.v{PREPARE_VERSION}.q8_0.gguf"
    ))
}

/// Writes a copy of `original` to `target` with every weight that lacks a SIMD kernel
/// requantized to Q8_0 (other tensors and all metadata are copied as they are). The copy is
/// written to a temporary file and renamed, so a crash never leaves a half-written model.
pub fn requantize(original: &Path, target: &Path) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        format!(
            "preparing {} for fast inference failed ({what}): {e}",
            original.display()
        )
    };
    let mut reader = BufReader::new(File::open(original).map_err(|e| fail("open", &e))?);
    let content = gguf_file::Content::read(&mut reader).map_err(|e| fail("read header", &e))?;
    let device = Device::Cpu;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    // GGUF files list tensors by offset; keep that order so the copy reads the same way.
    names.sort_by_key(|name| content.tensor_infos[*name].offset);
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content
            .tensor(&mut reader, name, &device)
            .map_err(|e| fail(name, &e))?;
        let block = GgmlDType::Q8_0.block_size();
        let last_dim = tensor.shape().dims().last().copied().unwrap_or(0);
        let tensor = if needs_requantization(tensor.dtype()) && last_dim % block == 0 {
            let values = tensor.dequantize(&device).map_err(|e| fail(name, &e))?;
            QTensor::quantize(&values, GgmlDType::Q8_0).map_err(|e| fail(name, &e))?
        } else {
            tensor
        };
        tensors.push((name.as_str(), tensor));
    }
    // candle writes tensors aligned to 32 bytes; a different alignment key would mislead readers.
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .filter(|(key, _)| key.as_str() != "general.alignment")
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    let dir = target
        .parent()
        .ok_or_else(|| fail("target", &target.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| fail("create cache directory", &e))?;
    // Unique per process and call: two loads in one process may prepare at the same time.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temporary = target.with_extension(format!("tmp{}-{call}", std::process::id()));
    let written = (|| {
        let mut out = BufWriter::new(File::create(&temporary).map_err(|e| fail("create", &e))?);
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        gguf_file::write(&mut out, &metadata, &refs).map_err(|e| fail("write", &e))?;
        out.into_inner()
            .map_err(|e| fail("flush", &e))?
            .sync_all()
            .map_err(|e| fail("sync", &e))?;
        std::fs::rename(&temporary, target).map_err(|e| fail("rename", &e))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// The file to load for `original`: itself when candle has kernels for all its weights,
/// otherwise the prepared copy (made now if missing). `None` for `cache_dir` disables it.
pub fn fast_path(
    original: &Path,
    file_hash: u64,
    cache_dir: Option<&Path>,
) -> Result<(PathBuf, bool), String> {
    let Some(cache_dir) = cache_dir else {
        return Ok((original.to_path_buf(), false));
    };
    if !is_needed(original)? {
        return Ok((original.to_path_buf(), false));
    }
    let target = prepared_path(cache_dir, original, file_hash);
    if !target.exists() {
        if let Some(dir) = target.parent() {
            super::remove_stale_temporaries(dir, true);
        }
        tracing::info!(from = %original.display(), to = %target.display(), "requantizing to Q8_0");
        if let Err(error) = requantize(original, &target) {
            // A cache that cannot be written (read-only, full) costs speed, not the model.
            tracing::warn!("{error}; loading the original weights (slower)");
            return Ok((original.to_path_buf(), false));
        }
    }
    Ok((target, true))
}

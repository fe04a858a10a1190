//! `aidiag model info` on the default model, fetched by `scripts/fetch-model.sh` (the README's
//! test command runs it first).

use std::process::Command;

#[test]
fn model_info_describes_the_default_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(["model", "info"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "run scripts/fetch-model.sh first: {stderr}"
    );
    assert!(
        stdout.contains("SmolLM2-135M-Instruct.Q4_1.gguf (default)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("file:           98362432 bytes, GGUF version 3"),
        "{stdout}"
    );
    assert!(stdout.contains("architecture:   llama"), "{stdout}");
    assert!(
        stdout.contains("quantization:   Q4_1 (210 tensors), F32 (61 tensors), Q8_0 (1 tensors)"),
        "{stdout}"
    );
    assert!(stdout.contains("parameters:     134.5 M"), "{stdout}");
    assert!(stdout.contains("BPE (gpt2), 49152 tokens"), "{stdout}");
}

#[test]
fn a_missing_model_says_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(["model", "info", "--model", "/nonexistent/model.gguf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("/nonexistent/model.gguf does not exist: run scripts/fetch-model.sh"),
        "{stderr}"
    );
}

/// The same prompt and model give the same text (fixed sampling seed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_is_deterministic() {
    let (path, _) = aidiag::model::resolve(None).unwrap();
    let engine = aidiag::model::engine::Engine::load(&path).await.unwrap();
    let prompt =
        "<|im_start|>user\nName one keyword of the C language.<|im_end|>\n<|im_start|>assistant\n";
    let first = engine.generate(prompt, 12, "<|im_end|>", &|| false).await;
    let second = engine.generate(prompt, 12, "<|im_end|>", &|| false).await;
    assert!(!first.is_empty());
    assert_eq!(first, second);
}

#[tokio::test]
async fn unusable_model_files_give_clear_errors() {
    let error = aidiag::model::engine::Engine::load(std::path::Path::new("/nonexistent/m.gguf"))
        .await
        .err()
        .unwrap();
    assert!(
        error.contains("/nonexistent/m.gguf does not exist: run scripts/fetch-model.sh"),
        "{error}"
    );
    let dir = std::env::temp_dir().join(format!("aidiag-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, b"GGUF\x03\x00\x00\x00 truncated").unwrap();
    let error = aidiag::model::engine::Engine::load(&junk)
        .await
        .err()
        .unwrap();
    assert!(
        error.contains("is not usable: the file ends inside its GGUF header"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

//! `aidiag check`: the three formats and the exit codes, on the real binary.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn aidiag(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run aidiag");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const BAD: &str = "fixtures/rules/leak-on-error/bad.c";
const GOOD: &str = "fixtures/rules/leak-on-error/good.c";

#[test]
fn text_output_looks_like_a_compiler() {
    let (code, out, _) = aidiag(&["check", BAD]);
    assert_eq!(code, 1);
    let first = out.lines().next().unwrap();
    assert_eq!(
        first,
        "fixtures/rules/leak-on-error/bad.c:14:3: warning: `buf` allocated at line 8 is not freed on the error return at line 14 [leak-on-error]"
    );
    assert_eq!(out.lines().nth(1).unwrap(), "   14 | \t\treturn ret;");
    assert_eq!(out.lines().nth(2).unwrap(), "      | \t\t^~~~~~~~~~~");
    assert!(out.contains("bad.c:8:8: note: `buf` is allocated here by kmalloc()"));
}

#[test]
fn clean_files_exit_zero_and_print_nothing() {
    let (code, out, err) = aidiag(&["check", GOOD]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
}

#[test]
fn json_output_has_the_documented_shape() {
    let (code, out, _) = aidiag(&["check", "--format", "json", BAD, GOOD]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["version"], 1);
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[1]["path"], GOOD);
    assert_eq!(files[1]["findings"], Value::Array(vec![]));
    let f = &files[0]["findings"][0];
    let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "confidence",
            "fix",
            "message",
            "range",
            "related",
            "rule",
            "severity",
            "source"
        ]
    );
    assert_eq!(f["rule"], "leak-on-error");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["source"], "rule");
    assert_eq!(
        f["range"]["start"],
        serde_json::json!({"line": 14, "column": 3})
    );
    assert_eq!(
        f["range"]["end"],
        serde_json::json!({"line": 14, "column": 14})
    );
    assert_eq!(
        f["related"][0]["range"]["start"],
        serde_json::json!({"line": 8, "column": 8})
    );
    let confidence = f["confidence"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&confidence));
    assert_eq!(f["fix"]["title"], "Free `buf` before leaving");
    assert_eq!(
        f["fix"]["edits"][0]["text"],
        " {\n\t\tkfree(buf);\n\t\treturn ret;\n\t}"
    );
}

#[test]
fn sarif_output_has_the_required_fields() {
    let (code, out, _) = aidiag(&["check", "--format", "sarif", "fixtures/rules"]);
    assert_eq!(code, 1);
    let sarif: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["$schema"]
        .as_str()
        .unwrap()
        .contains("sarif-schema-2.1.0"));
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "aidiag");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), aidiag::analysis::rules::RULES.len());
    let results = run["results"].as_array().unwrap();
    assert!(results.len() >= 22, "{} results", results.len());
    for result in results {
        // SARIF 2.1.0: every result has a message with text, and its locations have a
        // physicalLocation with an artifactLocation and a region whose startLine is at least 1.
        assert!(result["message"]["text"].is_string());
        let rule = result["ruleId"].as_str().unwrap();
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], rule);
        assert!(matches!(
            result["level"].as_str().unwrap(),
            "error" | "warning" | "note" | "none"
        ));
        let location = &result["locations"][0]["physicalLocation"];
        assert!(location["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("fixtures/rules/"));
        assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(location["region"]["startColumn"].as_u64().unwrap() >= 1);
    }
    assert_eq!(run["invocations"][0]["executionSuccessful"], true);
}

#[test]
fn unreadable_files_are_named_and_the_rest_still_checked() {
    let (code, out, err) = aidiag(&["check", "does/not/exist.c", BAD]);
    assert_eq!(code, 2);
    assert!(
        err.contains("does/not/exist.c: no such file or directory"),
        "{err}"
    );
    assert!(
        out.contains("[leak-on-error]"),
        "the readable file was still checked"
    );
}

#[test]
fn non_utf8_files_are_checked_with_a_warning() {
    let dir = std::env::temp_dir().join(format!("aidiag-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("latin1.c");
    let mut bytes = b"/* Copyright J\xf6rg */\n".to_vec();
    bytes.extend_from_slice(
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(BAD))
            .unwrap()
            .as_slice(),
    );
    std::fs::write(&path, bytes).unwrap();
    let (code, out, err) = aidiag(&["check", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 1);
    assert!(
        err.contains("not valid UTF-8 (first bad byte at line 1)"),
        "{err}"
    );
    assert!(
        out.contains("latin1.c:15:3: warning: `buf` allocated at line 9"),
        "{out}"
    );
}

#[test]
fn usage_errors_exit_two() {
    let (code, _, err) = aidiag(&["check", "--format", "xml", BAD]);
    assert_eq!(code, 2);
    assert!(err.contains("xml"), "{err}");
    let (code, _, _) = aidiag(&["frobnicate"]);
    assert_eq!(code, 2);
}

/// `.aidiag.toml` next to the checked files sets the model; a broken one is an error naming the
/// file, and nothing is checked with half a configuration.
#[test]
fn the_project_file_is_read_and_a_broken_one_is_an_error() {
    let dir = std::env::temp_dir().join(format!("aidiag-project-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let file = dir.join("src/a.c");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/rules/leak-on-error/bad.c"
        ),
        &file,
    )
    .unwrap();
    let project = dir.join(".aidiag.toml");
    std::fs::write(
        &project,
        "[model]\npath = \"models/none.gguf\"\nverdicts = \"annotate\"\n",
    )
    .unwrap();
    let (code, stdout, stderr) = aidiag(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.contains("[leak-on-error]"), "{stdout}");
    // The model path is resolved against the project file's directory, and its absence is a
    // warning: the rule findings are still reported.
    let expected = format!("{} does not exist", dir.join("models/none.gguf").display());
    let expected = expected.replace(
        &dir.display().to_string(),
        &std::fs::canonicalize(&dir).unwrap().display().to_string(),
    );
    assert!(stderr.contains(&expected), "{stderr}");

    // --no-model wins over the project file.
    let (_, _, stderr) = aidiag(&["check", "--no-model", file.to_str().unwrap()]);
    assert!(!stderr.contains("does not exist"), "{stderr}");

    std::fs::write(&project, "[model]\nverdict = \"annotate\"\n").unwrap();
    let (code, stdout, stderr) = aidiag(&["check", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains(".aidiag.toml") && stderr.contains("unknown field `verdict`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_list_shows_what_is_installed_and_what_each_measured_model_earned() {
    let cache = std::env::temp_dir().join(format!("aidiag-model-list-{}", std::process::id()));
    let models = cache.join("aidiag/models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("mine.gguf"), b"GGUF a model nobody measured").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(["model", "list"])
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("mine.gguf") && text.contains("not measured: verdicts annotate"),
        "{text}"
    );
    // The three measured models, none installed here, with the policy each earned.
    assert!(text.contains("measured, not installed"), "{text}");
    for file in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    ] {
        let line = text.lines().find(|l| l.contains(file)).expect(file);
        assert!(line.contains("verdicts off"), "{line}");
    }
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn the_project_file_is_found_for_a_file_named_relative_to_the_working_directory() {
    let dir = std::env::temp_dir().join(format!("aidiag-relative-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.c"), "int f(void) { return 0; }\n").unwrap();
    std::fs::write(dir.join(".aidiag.toml"), "[model]\nverdict = \"off\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(["check", "a.c"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `verdict`"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

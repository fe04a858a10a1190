//! Hostile input, end to end: each test is a defect a probe found (issue "Reliability"), run against
//! the real binary. The server must answer, keep serving and end cleanly.

mod common;

use common::Client;
use serde_json::{json, Value};

fn is_error(code: i64) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["error"]["code"] == code
}

fn status(client: &mut Client) -> Value {
    client.request(
        "workspace/executeCommand",
        json!({"command": "aidiag.modelStatus", "arguments": []}),
    )
}

#[test]
fn ids_that_are_not_integers_are_invalid_requests_and_the_server_goes_on() {
    let mut client = Client::start();
    client.initialize(&["utf-16"]);
    for id in ["1.5", "1e3", "1.0", "9223372036854775808"] {
        client.send_raw(format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"shutdown"}}"#).as_bytes());
        let reply = client.wait_for(is_error(-32600));
        assert_eq!(reply["id"], Value::Null, "{reply}");
    }
    client.send_raw(br#"{"jsonrpc":"2.0","id":41,"id":42,"method":"shutdown"}"#);
    let reply = client.wait_for(is_error(-32600));
    assert_eq!(reply["id"], 42, "{reply}");
    assert!(status(&mut client).get("result").is_some());
    assert_eq!(client.shutdown(), 0);
}

#[test]
fn a_frame_with_a_wrong_content_length_costs_that_message_only() {
    let body = r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#;
    let wrong = [
        "Content-Length: 10".to_owned(),
        format!("Content-Length: {}", body.len() + 30),
        "Content-Length: abc".to_owned(),
        "Content-Length: -5".to_owned(),
        "Content-Length: 18446744073709551616".to_owned(),
        "Content-Length: 300000000".to_owned(),
        "Content-Type: application/vscode-jsonrpc; charset=utf-8".to_owned(),
    ];
    let mut client = Client::start();
    client.initialize(&["utf-16"]);
    for header in wrong {
        client.send_bytes(format!("{header}\r\n\r\n{body}").as_bytes());
        // The next well-formed request is answered, whatever the wrong frame left behind.
        let reply = status(&mut client);
        assert!(reply.get("result").is_some(), "after {header:?}: {reply}");
        client.wait_for(is_error(-32700));
    }
    assert_eq!(client.shutdown(), 0);
}

#[test]
fn dollar_requests_get_method_not_found() {
    let mut client = Client::start();
    client.initialize(&["utf-16"]);
    let reply = client.request("$/aidiag/unknown", json!({}));
    assert_eq!(reply["error"]["code"], -32601, "{reply}");
    client.notify("$/setTrace", json!({"value": "off"}));
    assert!(status(&mut client).get("result").is_some());
    assert_eq!(client.shutdown(), 0);
}

const LEAK: &str = "// c\n#include <x.h>\nint f(int x)\n{\n\tchar *p = kmalloc(4, GFP_KERNEL);\n\tif (!p)\n\t\treturn -ENOMEM;\n\tif (x)\n\t\treturn -EINVAL;\n\tkfree(p);\n\treturn 0;\n}\n";

fn check_json(dir: &std::path::Path, name: &str, text: &str) -> Vec<(String, Value)> {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(["check", "--no-model", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_owned(), f["range"].clone()))
        .collect()
}

#[test]
fn carriage_returns_alone_end_lines_in_the_cli_and_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let lf = check_json(dir.path(), "lf.c", LEAK);
    let cr_text = LEAK.replace('\n', "\r");
    assert_eq!(lf.len(), 1, "{lf:?}");
    assert_eq!(check_json(dir.path(), "cr.c", &cr_text), lf);
    assert_eq!(
        check_json(dir.path(), "crlf.c", &LEAK.replace('\n', "\r\n")),
        lf
    );

    let mut client = Client::start();
    client.initialize(&["utf-16"]);
    let uri = "file:///cr.c";
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "c", "version": 1, "text": cr_text}}),
    );
    let diagnostics = client.diagnostics(uri, 1);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0]["range"]["start"]["line"], 8);
    assert_eq!(client.shutdown(), 0);
}

/// Function bodies that nest `n` levels in each way C can nest, with an allocation so that the
/// path walk runs too.
fn nested(shape: &str, n: usize) -> String {
    let body = match shape {
        "braces" => format!("{}return -EINVAL;{}", "{".repeat(n), "}".repeat(n)),
        "parens" => format!("return {}x{};", "(".repeat(n), ")".repeat(n)),
        "ifs" => format!("{}return -EINVAL;{}", "if (x) {".repeat(n), "}".repeat(n)),
        "else-ifs" => format!(
            "if (x == 0) return -EINVAL;{} else return 0;",
            " else if (x) return -EIO;".repeat(n)
        ),
        "loops" => format!(
            "{}return -EINVAL;{}",
            "while (x) {".repeat(n),
            "}".repeat(n)
        ),
        "sums" => format!("return {};", vec!["x"; n + 1].join(" + ")),
        "calls" => format!("return {}x{};", "f(".repeat(n), ")".repeat(n)),
        "nots" => format!("return {}x;", "!".repeat(n)),
        "casts" => format!("return {}x;", "(long)".repeat(n)),
        "ternaries" => format!("return {}0;", "x ? 1 : ".repeat(n)),
        "assignments" => format!("return {}x;", "y = ".repeat(n)),
        _ => unreachable!(),
    };
    format!("int f(int x, int y)\n{{\n\tchar *p = kmalloc(4, GFP_KERNEL);\n\tif (!p)\n\t\treturn -ENOMEM;\n\t{body}\n\tkfree(p);\n\treturn 0;\n}}\n")
}

const SHAPES: [&str; 11] = [
    "braces",
    "parens",
    "ifs",
    "else-ifs",
    "loops",
    "sums",
    "calls",
    "nots",
    "casts",
    "ternaries",
    "assignments",
];

fn depth_of(text: &str) -> usize {
    let parse = aidiag::analysis::syntax::parse(text, None);
    let function = aidiag::analysis::functions::function_nodes(&parse.tree)[0];
    aidiag::analysis::syntax::depth(function, usize::MAX)
}

#[test]
fn the_deepest_function_the_rules_accept_is_checked_on_the_analysis_stack() {
    use aidiag::analysis::{check_text, rules, CheckOptions};
    for shape in SHAPES {
        // The largest n whose tree is within the limit (depth grows with n).
        let (mut low, mut high) = (1, 2 * rules::MAX_DEPTH);
        while low < high {
            let mid = (low + high).div_ceil(2);
            if depth_of(&nested(shape, mid)) <= rules::MAX_DEPTH {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        let text = nested(shape, low);
        // On the stack the CLI's workers and the server's threads get.
        let findings = std::thread::Builder::new()
            .stack_size(rules::ANALYSIS_STACK_BYTES)
            .spawn(move || check_text(&text, CheckOptions { fixes: true }))
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("{shape} at {low} levels"));
        assert!(
            findings.iter().all(|f| f.rule != rules::NOT_CHECKED),
            "{shape}: {findings:?}"
        );
        let over = check_text(&nested(shape, low + 1), CheckOptions::default());
        assert_eq!(over.len(), 1, "{shape}");
        assert_eq!(over[0].rule, rules::NOT_CHECKED);
    }
}

#[test]
fn sixty_thousand_levels_are_a_note_in_the_cli_and_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // (tree-sitter's own parse of nested calls grows with the square of the depth: 60,000 take
    // 8 s, so calls nest 5,000 deep here, five times the limit.)
    let text: String = SHAPES
        .iter()
        .map(|&shape| nested(shape, if shape == "calls" { 5_000 } else { 60_000 }))
        .collect();
    let path = dir.path().join("deep.c");
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(["check", "--no-model"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout.matches("[not-checked]").count(),
        SHAPES.len(),
        "{stdout}"
    );

    let mut client = Client::start();
    client.initialize(&["utf-16"]);
    let uri = "file:///deep.c";
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "c", "version": 1, "text": text}}),
    );
    let diagnostics = client.diagnostics(uri, 1);
    assert_eq!(diagnostics.len(), SHAPES.len(), "{diagnostics:?}");
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": 4}}),
    );
    assert!(hover.get("error").is_none(), "{hover}");
    assert_eq!(client.shutdown(), 0);
}

#[test]
fn fix_verification_is_bounded_by_the_size_of_the_function() {
    use aidiag::analysis::{check_text, CheckOptions};
    // One allocation and 400 error returns that leak it: 400 findings, each with a fix whose
    // verification checks the whole function again. Only the first few are verified.
    let text = format!(
        "int f(int x)\n{{\n\tint ret;\n\tchar *p = kmalloc(4, GFP_KERNEL);\n\tif (!p)\n\t\treturn -ENOMEM;\n{}\tkfree(p);\n\treturn 0;\n}}\n",
        "\tret = g(x);\n\tif (ret)\n\t\treturn ret;\n".repeat(400)
    );
    let findings = check_text(&text, CheckOptions { fixes: true });
    assert_eq!(findings.len(), 400);
    let with_fixes = findings.iter().take_while(|f| !f.fixes.is_empty()).count();
    assert!((1..=32).contains(&with_fixes), "{with_fixes} verified");
    assert!(findings[with_fixes..].iter().all(|f| f.fixes.is_empty()));
}

#[cfg(unix)]
#[test]
fn fifos_and_devices_are_skipped_with_a_message_and_the_rest_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.c");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let good = dir.path().join("leak.c");
    std::fs::write(&good, LEAK).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .args(["check", "--no-model"])
        .arg(&fifo)
        .arg("/dev/zero")
        .arg(&good)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pipe.c: not a regular file"), "{stderr}");
    assert!(stderr.contains("/dev/zero: not a regular file"), "{stderr}");
    assert!(stdout.contains("[leak-on-error]"), "{stdout}");
}

#[test]
fn a_document_over_the_size_limit_is_refused_with_a_message_and_others_are_served() {
    let mut client = Client::start();
    client.initialize(&["utf-16"]);
    let big = format!("{LEAK}/*{}*/\n", "x".repeat(9 << 20));
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": "file:///big.c", "languageId": "c", "version": 1, "text": big}}),
    );
    let message = client.wait_for(|m| m["method"] == "window/showMessage");
    assert!(
        message["params"]["message"]
            .as_str()
            .unwrap()
            .contains("limit"),
        "{message}"
    );
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": "file:///small.c", "languageId": "c", "version": 1, "text": LEAK}}),
    );
    assert_eq!(client.diagnostics("file:///small.c", 1).len(), 1);
    // A change that makes a document too large closes it, with the same message.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": "file:///small.c", "version": 2},
               "contentChanges": [{"text": big}]}),
    );
    let message = client.wait_for(|m| m["method"] == "window/showMessage");
    assert!(
        message["params"]["message"]
            .as_str()
            .unwrap()
            .contains("small.c"),
        "{message}"
    );
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": "file:///small.c"}, "position": {"line": 8, "character": 3}}),
    );
    assert_eq!(hover["result"], Value::Null, "{hover}");
    assert_eq!(client.shutdown(), 0);
}

fn change(
    client: &mut Client,
    uri: &str,
    version: i64,
    line: u32,
    character: u32,
    end: u32,
    text: &str,
) {
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": version},
               "contentChanges": [{"range": {"start": {"line": line, "character": character},
                                             "end": {"line": line, "character": end}},
                                   "text": text}]}),
    );
}

#[test]
fn suppression_comments_outside_the_function_text_apply_after_an_edit() {
    let one_line = "int f(int x) { char *p = kmalloc(4, GFP_KERNEL); if (!p) return -ENOMEM; if (x) return -EINVAL; kfree(p); return 0; }\n";
    let mut client = Client::start();
    client.initialize(&["utf-16"]);
    let uri = "file:///one.c";
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "c", "version": 1, "text": one_line}}),
    );
    assert_eq!(client.diagnostics(uri, 1).len(), 1);
    // The server's own "Suppress leak-on-error here" action, applied: a line above the function.
    let actions = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri},
               "range": {"start": {"line": 0, "character": 80}, "end": {"line": 0, "character": 80}},
               "context": {"diagnostics": []}}),
    );
    let suppress = actions["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["title"].as_str().unwrap().starts_with("Suppress"))
        .unwrap_or_else(|| panic!("{actions}"))
        .clone();
    let edit = &suppress["edit"]["changes"][uri][0];
    let (line, start, end) = (
        edit["range"]["start"]["line"].as_u64().unwrap() as u32,
        edit["range"]["start"]["character"].as_u64().unwrap() as u32,
        edit["range"]["end"]["character"].as_u64().unwrap() as u32,
    );
    change(
        &mut client,
        uri,
        2,
        line,
        start,
        end,
        edit["newText"].as_str().unwrap(),
    );
    assert_eq!(client.diagnostics(uri, 2).len(), 0);
    // Undone: the finding is back.
    let lines = edit["newText"].as_str().unwrap().lines().count() as u32;
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 3},
               "contentChanges": [{"range": {"start": {"line": 0, "character": 0},
                                             "end": {"line": lines, "character": 0}},
                                   "text": ""}]}),
    );
    assert_eq!(client.diagnostics(uri, 3).len(), 1);
    // A comment after the closing brace, on the finding's line.
    let end = one_line.trim_end().len() as u32;
    change(
        &mut client,
        uri,
        4,
        0,
        end,
        end,
        " /* aidiag-ignore: leak-on-error */",
    );
    assert_eq!(client.diagnostics(uri, 4).len(), 0);
    assert_eq!(client.shutdown(), 0);
}

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
    assert_eq!(check_json(dir.path(), "crlf.c", &LEAK.replace('\n', "\r\n")), lf);

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

//! End-to-end: the real binary over stdio, as an editor drives it.

mod common;

use common::Client;
use serde_json::{json, Value};

const URI: &str = "file:///tmp/aidiag-e2e/driver.c";

const BUGGY: &str = "\
static int foo_read_config(struct foo_dev *fdev)
{
\tchar *buf;
\tint ret;

\tbuf = kmalloc(FOO_CFG_SIZE, GFP_KERNEL);
\tif (!buf)
\t\treturn -ENOMEM;
\tret = foo_hw_read(fdev, buf, FOO_CFG_SIZE);
\tif (ret < 0)
\t\treturn ret;
\tfoo_apply_config(fdev, buf);
\tkfree(buf);
\treturn 0;
}

static int foo_other(struct foo_dev *fdev)
{
\treturn fdev->mode;
}
";

fn open(client: &mut Client, text: &str) {
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": URI, "languageId": "c", "version": 1, "text": text}}),
    );
}

/// Applies LSP text edits (UTF-16 positions, ASCII text here) to `text`.
fn apply_edits(text: &str, edits: &[Value]) -> String {
    let offset = |pos: &Value| {
        let line = pos["line"].as_u64().unwrap() as usize;
        let character = pos["character"].as_u64().unwrap() as usize;
        text.split_inclusive('\n')
            .take(line)
            .map(str::len)
            .sum::<usize>()
            + character
    };
    let mut edits: Vec<_> = edits
        .iter()
        .map(|e| {
            (
                offset(&e["range"]["start"]),
                offset(&e["range"]["end"]),
                e["newText"].as_str().unwrap(),
            )
        })
        .collect();
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_owned();
    for (start, end, new) in edits {
        out.replace_range(start..end, new);
    }
    out
}

#[test]
fn editor_session_from_open_to_exit() {
    let mut client = Client::start();
    let reply = client.initialize(&["utf-16"]);
    let caps = &reply["result"]["capabilities"];
    assert_eq!(caps["positionEncoding"], "utf-16");
    assert_eq!(caps["textDocumentSync"]["change"], 2, "incremental sync");
    assert_eq!(caps["hoverProvider"], true);
    assert_eq!(
        caps["codeActionProvider"]["codeActionKinds"],
        json!(["quickfix"])
    );
    assert_eq!(reply["result"]["serverInfo"]["name"], "aidiag");

    open(&mut client, BUGGY);
    let diagnostics = client.diagnostics(URI, 1);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    let d = &diagnostics[0];
    assert_eq!(d["code"], "leak-on-error");
    assert_eq!(d["source"], "aidiag");
    assert_eq!(d["severity"], 2);
    assert_eq!(
        d["range"],
        json!({"start": {"line": 10, "character": 2}, "end": {"line": 10, "character": 13}})
    );
    assert_eq!(
        d["message"],
        "`buf` allocated at line 6 is not freed on the error return at line 11"
    );
    assert_eq!(
        d["relatedInformation"][0]["location"]["range"]["start"],
        json!({"line": 5, "character": 7})
    );
    assert!(d["codeDescription"]["href"]
        .as_str()
        .unwrap()
        .ends_with("docs/rules/leak-on-error.md"));

    // Hover on the finding explains it; hover elsewhere says nothing.
    let hover = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": URI}, "position": {"line": 10, "character": 4}}),
    );
    let markdown = hover["result"]["contents"]["value"].as_str().unwrap();
    assert!(markdown.contains("**leak-on-error**"), "{markdown}");
    assert!(markdown.contains("Why it matters"), "{markdown}");
    assert!(
        markdown.contains("line 6: `buf` is allocated here by kmalloc()"),
        "{markdown}"
    );
    let nothing = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": URI}, "position": {"line": 18, "character": 3}}),
    );
    assert_eq!(nothing["result"], Value::Null);

    // Code actions: the verified fix (preferred) and the suppression.
    let actions = client.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": URI}, "range": d["range"], "context": {"diagnostics": [d]}}),
    );
    let actions = actions["result"].as_array().unwrap().clone();
    let titles: Vec<&str> = actions
        .iter()
        .map(|a| a["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["Free `buf` before leaving", "Suppress leak-on-error here"]
    );
    assert_eq!(actions[0]["isPreferred"], true);
    assert_eq!(actions[1]["isPreferred"], false);
    let edits = actions[0]["edit"]["changes"][URI]
        .as_array()
        .unwrap()
        .clone();
    let fixed = apply_edits(BUGGY, &edits);
    assert!(
        fixed.contains("\tif (ret < 0) {\n\t\tkfree(buf);\n\t\treturn ret;\n\t}\n"),
        "{fixed}"
    );

    // Apply the fix as the editor would: an incremental change; the warning goes.
    let changes: Vec<Value> = edits
        .iter()
        .map(|e| json!({"range": e["range"], "text": e["newText"]}))
        .collect();
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": changes}),
    );
    assert_eq!(client.diagnostics(URI, 2), Vec::<Value>::new());

    // Typing the bug back in (delete the added kfree line) brings the warning back.
    let start = fixed.find("\t\tkfree(buf);\n\t\treturn ret;").unwrap();
    let line = fixed[..start].matches('\n').count();
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 3}, "contentChanges": [
            {"range": {"start": {"line": line, "character": 0}, "end": {"line": line + 1, "character": 0}}, "text": ""}
        ]}),
    );
    let again = client.diagnostics(URI, 3);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["code"], "leak-on-error");

    // Malformed input is answered and the server keeps serving.
    client.send_raw(br#"{"jsonrpc":"2.0","id":77,"method":"#);
    let parse_error = client.wait_for(|m| m["error"]["code"] == -32700);
    assert_eq!(parse_error["id"], Value::Null);
    let unknown = client.request("aidiag/noSuchMethod", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);
    let far = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": URI}, "position": {"line": 9999, "character": 9999}}),
    );
    assert_eq!(far["result"], Value::Null);
    let not_open = client.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": "file:///not/open.c"}, "position": {"line": 0, "character": 0}}),
    );
    assert_eq!(not_open["result"], Value::Null);
    // A change whose range lies past the end of the file is clamped to the end.
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 4}, "contentChanges": [
            {"range": {"start": {"line": 500, "character": 3}, "end": {"line": 900, "character": 0}}, "text": "\n/* tail */\n"}
        ]}),
    );
    assert_eq!(client.diagnostics(URI, 4).len(), 1);

    assert_eq!(client.shutdown(), 0);
}

#[test]
fn utf8_positions_when_the_client_offers_them() {
    let mut client = Client::start();
    let reply = client.initialize(&["utf-8", "utf-16"]);
    assert_eq!(reply["result"]["capabilities"]["positionEncoding"], "utf-8");
    // A non-ASCII comment before the finding moves UTF-8 columns but not UTF-16 ones.
    let text = BUGGY.replace("\t\treturn ret;", "/* é */\treturn ret;");
    open(&mut client, &text);
    let d = client.diagnostics(URI, 1);
    // `/* é */` is 8 bytes but 7 UTF-16 code units; the tab follows it.
    assert_eq!(d[0]["range"]["start"], json!({"line": 10, "character": 9}));
    assert_eq!(client.shutdown(), 0);
}

#[test]
fn wrong_settings_are_named_in_a_message() {
    let mut client = Client::start();
    client.request(
        "initialize",
        json!({"processId": null, "rootUri": null, "capabilities": {}, "initializationOptions": {"debounceMs": "soon"}}),
    );
    let message = client.wait_for(|m| m["method"] == "window/showMessage");
    assert_eq!(message["params"]["type"], 1);
    assert!(message["params"]["message"]
        .as_str()
        .unwrap()
        .contains("aidiag.debounceMs"));
    assert_eq!(client.shutdown(), 0);
}

/// The server reads `.aidiag.toml` from the workspace root; a broken one is reported once with
/// `window/showMessage`, naming the file and the problem, and the server keeps serving.
#[test]
fn a_broken_project_file_is_reported() {
    let dir = std::env::temp_dir().join(format!("aidiag-lsp-project-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".aidiag.toml"), "[model]\nreview = \"yes\"\n").unwrap();
    let root = format!("file://{}", dir.display());
    let mut client = Client::start();
    client.request(
        "initialize",
        json!({"processId": null, "rootUri": root, "capabilities": {},
               "initializationOptions": {"useModel": false}}),
    );
    client.notify("initialized", json!({}));
    let message = client.wait_for(|m| m["method"] == "window/showMessage");
    let text = message["params"]["message"].as_str().unwrap();
    assert!(
        text.contains(".aidiag.toml") && text.contains("review"),
        "{text}"
    );
    let uri = format!("{root}/a.c");
    client.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "c", "version": 1, "text": "int f(void) { return 0; }\n"}}),
    );
    assert!(client.diagnostics(&uri, 1).is_empty());
    assert_eq!(client.shutdown(), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `workspace/executeCommand`: re-analysing the function under the cursor checks it again and
/// publishes; the model status says why the model is off; an unknown command is an error.
#[test]
fn commands_reanalyze_a_function_and_report_the_model_status() {
    let mut client = Client::start();
    let reply = client.initialize(&["utf-16"]);
    let commands = &reply["result"]["capabilities"]["executeCommandProvider"]["commands"];
    assert_eq!(commands, &json!(["aidiag.reanalyze", "aidiag.modelStatus"]));
    open(&mut client, BUGGY);
    assert_eq!(client.diagnostics(URI, 1).len(), 1);

    let reply = client.request(
        "workspace/executeCommand",
        json!({"command": "aidiag.reanalyze", "arguments": [URI, {"line": 10, "character": 3}]}),
    );
    assert_eq!(reply["result"], json!({"functions": 1}), "{reply}");
    // Published again for the same version.
    assert_eq!(client.diagnostics(URI, 1).len(), 1);

    let reply = client.request(
        "workspace/executeCommand",
        json!({"command": "aidiag.modelStatus", "arguments": []}),
    );
    assert_eq!(reply["result"]["state"], "off", "{reply}");
    assert_eq!(reply["result"]["reason"], "useModel is false", "{reply}");

    let reply = client.request(
        "workspace/executeCommand",
        json!({"command": "aidiag.reanalyze", "arguments": ["file:///not/open.c"]}),
    );
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    let reply = client.request(
        "workspace/executeCommand",
        json!({"command": "aidiag.nothing", "arguments": []}),
    );
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown command aidiag.nothing"),
        "{reply}"
    );
    assert_eq!(client.shutdown(), 0);
}

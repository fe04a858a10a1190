//! A minimal LSP client over the stdio of the real `aidiag` binary, for end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    /// Notifications and server requests read while waiting for something else.
    pending: Vec<Value>,
    next_id: i64,
}

const TIMEOUT: Duration = Duration::from_secs(20);

impl Client {
    pub fn start() -> Client {
        // The server's log, when a run needs it: AIDIAG_TEST_STDERR=FILE.
        Self::start_logging_to(std::env::var_os("AIDIAG_TEST_STDERR").map(Into::into))
    }

    /// Starts the server with its debug log written to `log` (dropped when `None`).
    pub fn start_logging_to(log: Option<std::path::PathBuf>) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_aidiag"))
            .arg("lsp")
            .env("AIDIAG_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match log {
                Some(file) => std::fs::File::create(file).expect("create the log").into(),
                None => Stdio::null(),
            })
            .spawn()
            .expect("start aidiag lsp");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, messages) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("Content-Length: ") {
                        length = v.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("Content-Length header")];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let value: Value = serde_json::from_slice(&body).expect("server sends JSON");
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Client {
            child,
            stdin,
            messages,
            pending: Vec::new(),
            next_id: 1,
        }
    }

    pub fn send_raw(&mut self, body: &[u8]) {
        write!(self.stdin, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
        self.stdin.write_all(body).unwrap();
        self.stdin.flush().unwrap();
    }

    /// Writes bytes as they are, framing included (or not).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    fn send(&mut self, value: &Value) {
        self.send_raw(value.to_string().as_bytes());
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and returns the whole response (with `result` or `error`).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.wait_for(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
    }

    /// Waits for a message matching `pred`, keeping the others for later.
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if pred(&m) => return m,
                Ok(m) => self.pending.push(m),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out; unread messages: {:#?}", self.pending)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("server closed its output; unread: {:#?}", self.pending)
                }
            }
        }
    }

    /// A message matching `pred` that has already arrived, without waiting.
    pub fn take(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        while let Ok(m) = self.messages.try_recv() {
            self.pending.push(m);
        }
        let i = self.pending.iter().position(pred)?;
        Some(self.pending.remove(i))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True when a message with `method` arrived and was not consumed by a wait.
    pub fn received(&self, method: &str) -> bool {
        self.pending.iter().any(|m| m["method"] == method)
    }

    /// Waits for the diagnostics of `uri` at `version`.
    pub fn diagnostics(&mut self, uri: &str, version: i64) -> Vec<Value> {
        let m = self.wait_for(|m| {
            m["method"] == "textDocument/publishDiagnostics"
                && m["params"]["uri"] == uri
                && m["params"]["version"] == version
        });
        m["params"]["diagnostics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Initializes without the model, so protocol tests neither wait for nor compete with it.
    pub fn initialize(&mut self, encodings: &[&str]) -> Value {
        self.initialize_with(encodings, json!({"useModel": false}))
    }

    pub fn initialize_with(&mut self, encodings: &[&str], options: Value) -> Value {
        self.initialize_with_capabilities(
            json!({"general": {"positionEncodings": encodings}}),
            options,
        )
    }

    pub fn initialize_with_capabilities(&mut self, capabilities: Value, options: Value) -> Value {
        let reply = self.request(
            "initialize",
            json!({"processId": null, "rootUri": null, "capabilities": capabilities,
                   "initializationOptions": options}),
        );
        self.notify("initialized", json!({}));
        reply
    }

    /// Answers a request the server sent.
    pub fn respond(&mut self, id: &Value, result: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    /// Sends shutdown and exit, and returns the exit code.
    pub fn shutdown(mut self) -> i32 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": "shutdown"}));
        let reply = self.wait_for(|m| m.get("id") == Some(&json!(id)));
        assert!(reply.get("error").is_none(), "shutdown failed: {reply}");
        self.send(&json!({"jsonrpc": "2.0", "method": "exit"}));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

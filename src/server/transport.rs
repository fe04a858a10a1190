//! Framing between the editor and tower-lsp.
//!
//! tower-lsp 0.20 reads stdin through a tokio-util `FramedRead`, which ends the stream after the
//! first message it cannot decode: one malformed message would stop the server. This proxy reads
//! the frames itself, answers malformed ones with a JSON-RPC error (-32700 parse error, -32600
//! invalid request) and forwards only well-formed messages, so the server keeps serving.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Mutex;

type Output = Arc<Mutex<Box<dyn AsyncWrite + Send + Unpin>>>;

async fn write_frame(output: &Output, body: &[u8]) {
    let mut out = output.lock().await;
    let header = format!("Content-Length: {}\r\n\r\n", body.len());
    let written = async {
        out.write_all(header.as_bytes()).await?;
        out.write_all(body).await?;
        out.flush().await
    };
    if let Err(error) = written.await {
        tracing::error!("cannot write to the client: {error}");
    }
}

async fn write_error(output: &Output, id: Value, code: i64, message: String) {
    tracing::warn!(code, "rejected a malformed message: {message}");
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    write_frame(output, body.to_string().as_bytes()).await;
}

/// Messages larger than this are refused: their bytes are skipped, not buffered.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// A header block longer than this is not a header block.
const MAX_HEADER_BYTES: usize = 8 * 1024;
const CONTENT_LENGTH: &[u8] = b"content-length:";

/// What the framer found in the bytes read so far.
#[derive(Debug, PartialEq)]
enum Event {
    /// A whole message body.
    Message(Vec<u8>),
    /// A frame that could not be used: answered with a parse error, then the reader resynchronises
    /// on the next `Content-Length:` header. `id` is the request's id when the body still showed it.
    Bad { id: Value, why: String },
}

/// Splits the client's byte stream into message bodies, and survives wrong frames.
///
/// A frame whose `Content-Length` is missing, unparsable, over the limit, or does not match its
/// body (too short: the body is not JSON; too long: the next frame's header begins inside it) is
/// reported once, and reading goes on at the next `Content-Length:` after the bad frame's headers,
/// so one bad frame costs one message, never the session. A body that parses is taken as it is
/// even if its text contains "Content-Length:".
#[derive(Default)]
struct Framer {
    buf: Vec<u8>,
    /// Looking for the next `Content-Length:` after a bad frame.
    scanning: bool,
    /// How far into the current frame's body the search for a following header has got.
    searched: usize,
}

fn find_header(bytes: &[u8], from: usize) -> Option<usize> {
    if bytes.len() < CONTENT_LENGTH.len() {
        return None;
    }
    (from..=bytes.len() - CONTENT_LENGTH.len())
        .find(|&i| bytes[i..i + CONTENT_LENGTH.len()].eq_ignore_ascii_case(CONTENT_LENGTH))
}

/// The end of the header block that starts `bytes` (the offset of the body), if it is complete.
fn header_end(bytes: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    while let Some(newline) = bytes[line_start..].iter().position(|&b| b == b'\n') {
        let line = &bytes[line_start..line_start + newline];
        line_start += newline + 1;
        if line.iter().all(|&b| b == b'\r') {
            return Some(line_start);
        }
    }
    None
}

/// The declared body length of a complete header block.
fn declared_length(headers: &[u8]) -> Result<usize, String> {
    let mut length = None;
    for line in headers.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {line:?}"));
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        }
    }
    length.ok_or_else(|| "missing Content-Length header".to_owned())
}

/// The id of a message whose JSON starts `bytes` and is complete, and where that JSON ends.
fn leading_json(bytes: &[u8]) -> Option<(Value, usize)> {
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    let value = stream.next()?.ok()?;
    Some((value, stream.byte_offset()))
}

impl Framer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Drops `n` bytes and starts looking for the next header.
    fn resync(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
        self.scanning = true;
        self.searched = 0;
    }

    /// The next event, or `None` when more bytes are needed.
    fn next(&mut self) -> Option<Event> {
        if self.scanning {
            match find_header(&self.buf, 0) {
                Some(at) => {
                    self.buf.drain(..at);
                    self.scanning = false;
                }
                None => {
                    // Keep only what could be the start of a header.
                    let keep = CONTENT_LENGTH.len() - 1;
                    let drop = self.buf.len().saturating_sub(keep);
                    self.buf.drain(..drop);
                    return None;
                }
            }
        }
        // Blank lines between frames are harmless.
        let blank = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
            .count();
        self.buf.drain(..blank);
        if self.buf.is_empty() {
            return None;
        }
        let Some(body_start) = header_end(&self.buf) else {
            if self.buf.len() > MAX_HEADER_BYTES {
                self.resync(1);
                return Some(Event::Bad {
                    id: Value::Null,
                    why: format!("no end of headers within {MAX_HEADER_BYTES} bytes"),
                });
            }
            return None;
        };
        let length = match declared_length(&self.buf[..body_start]) {
            Ok(n) if n > MAX_MESSAGE_BYTES => Err(format!(
                "message of {n} bytes is larger than the {MAX_MESSAGE_BYTES}-byte limit"
            )),
            other => other,
        };
        let length = match length {
            Ok(n) => n,
            Err(why) => {
                self.resync(body_start);
                return Some(Event::Bad {
                    id: Value::Null,
                    why,
                });
            }
        };
        let available = &self.buf[body_start..];
        if available.len() < length {
            // A body shorter than declared, followed by the next frame, would keep us waiting
            // for bytes that belong to other messages: recognise it now.
            while let Some(next) = find_header(available, self.searched) {
                self.searched = next + 1;
                let Some((value, end)) = leading_json(&available[..next]) else {
                    continue;
                };
                if available[end..next].iter().all(u8::is_ascii_whitespace) {
                    let id = value.get("id").cloned().unwrap_or(Value::Null);
                    self.resync(body_start + next);
                    return Some(Event::Bad {
                        id,
                        why: format!(
                            "Content-Length {length} does not match the body ({end} bytes)"
                        ),
                    });
                }
            }
            // Bytes that may yet begin a header are searched again when more arrive.
            self.searched = available.len().saturating_sub(CONTENT_LENGTH.len() - 1);
            return None;
        }
        let body = &self.buf[body_start..body_start + length];
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
            let body = body.to_vec();
            self.buf.drain(..body_start + length);
            self.searched = 0;
            return Some(Event::Message(body));
        }
        // Not one JSON value: a Content-Length too short (the body's tail follows) or too long
        // (the next frame's header is inside). Validation would name a body that is simply
        // malformed JSON; both go on at the next header after this frame's headers.
        let id = leading_json(body)
            .and_then(|(value, _)| value.get("id").cloned())
            .unwrap_or(Value::Null);
        let why = match serde_json::from_slice::<Value>(body) {
            Err(e) if leading_json(body).is_some() || e.is_eof() => {
                format!("Content-Length {length} does not match the body")
            }
            Err(e) => format!("{e}"),
            Ok(_) => unreachable!("checked above"),
        };
        self.resync(body_start);
        Some(Event::Bad { id, why })
    }
}

/// The top-level members of a message, refusing a key given twice (serde_json would keep the last
/// one silently; tower-lsp refuses the message and stops reading).
struct Members(serde_json::Map<String, Value>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    if members.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate member {key:?}"
                        )));
                    }
                    members.insert(key, value);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Why a message is not forwarded: the id to answer, the JSON-RPC error code and the message.
type Rejection = (Value, i64, String);

/// Checks the shape tower-lsp will accept and returns the message to forward, re-encoded so that
/// tower-lsp reads exactly what was checked.
fn validate(body: &[u8]) -> Result<Vec<u8>, Rejection> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| (Value::Null, -32700, format!("Parse error: {e}")))?;
    // An id tower-lsp can answer: an integer in i64, a string, or null.
    let id = match value.get("id") {
        Some(id @ (Value::String(_) | Value::Null)) => id.clone(),
        Some(Value::Number(n)) if n.is_i64() => Value::Number(n.clone()),
        _ => Value::Null,
    };
    let invalid = |why: &str| (id.clone(), -32600, format!("Invalid request: {why}"));
    if !value.is_object() {
        return Err(invalid("a message must be a JSON object"));
    }
    let Members(object) = serde_json::from_slice(body).map_err(|e| invalid(&e.to_string()))?;
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(invalid("\"jsonrpc\" must be \"2.0\""));
    }
    match object.get("id") {
        None | Some(Value::String(_) | Value::Null) => {}
        Some(Value::Number(n)) if n.is_i64() => {}
        Some(Value::Number(n)) => {
            return Err(invalid(&format!(
                "\"id\" must be an integer from -2^63 to 2^63-1, not {n}"
            )))
        }
        Some(_) => return Err(invalid("\"id\" must be a number, a string or null")),
    }
    match object.get("method") {
        // tower-lsp drops requests for `$/` methods without an answer; LSP wants MethodNotFound.
        Some(Value::String(method)) if method.starts_with("$/") && object.contains_key("id") => {
            return Err((id, -32601, format!("Method not found: {method}")))
        }
        Some(Value::String(_)) => match object.get("params") {
            None | Some(Value::Object(_) | Value::Array(_) | Value::Null) => {}
            Some(_) => return Err(invalid("\"params\" must be an object or an array")),
        },
        Some(_) => return Err(invalid("\"method\" must be a string")),
        None if object.contains_key("id")
            && (object.contains_key("result") || object.contains_key("error")) => {}
        None => {
            return Err(invalid(
                "a message needs a \"method\", or an \"id\" with a \"result\" or an \"error\"",
            ))
        }
    }
    Ok(serde_json::to_vec(&Value::Object(object)).expect("a JSON value encodes"))
}

/// Fuzzing entry: feeds `data` to the framer in chunks (their sizes taken from the data) and
/// checks what it must never do: panic, hand out a body that is not JSON, hand out more bytes
/// than it was given, or buffer more than one frame's worth. Every body goes through `validate`.
pub fn fuzz_framing(data: &[u8]) {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut framer = Framer::default();
    let mut handed_out = 0;
    for piece in data.chunks(chunk) {
        framer.push(piece);
        while let Some(event) = framer.next() {
            if let Event::Message(body) = event {
                assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok());
                handed_out += body.len();
                let _ = validate(&body);
            }
        }
        assert!(framer.buf.len() <= MAX_HEADER_BYTES + MAX_MESSAGE_BYTES + chunk);
        assert!(framer.buf.len() <= data.len());
    }
    assert!(handed_out <= data.len());
}

/// Copies whole frames from the server's output to the client.
async fn forward_server_output<R: AsyncRead + Unpin>(mut from: R, output: Output) {
    let mut framer = Framer::default();
    let mut chunk = vec![0; 1 << 16];
    loop {
        while let Some(event) = framer.next() {
            if let Event::Message(body) = event {
                write_frame(&output, &body).await;
            }
        }
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => framer.push(&chunk[..n]),
        }
    }
}

/// How the client ended the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// `shutdown` then `exit`: exit code 0.
    Clean,
    /// `exit` without `shutdown`, or the client closed stdin: exit code 1, as LSP asks.
    Abrupt,
}

fn method_of(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("method")?.as_str().map(str::to_owned)
}

/// Serves `service` on stdin/stdout through the validating proxy.
pub async fn serve<S>(service: S, socket: tower_lsp::ClientSocket) -> Ending
where
    S: tower::Service<tower_lsp::jsonrpc::Request, Response = Option<tower_lsp::jsonrpc::Response>>
        + Send
        + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send,
{
    let output: Output = Arc::new(Mutex::new(Box::new(tokio::io::stdout())));
    let (mut to_server, server_input) = tokio::io::duplex(1 << 16);
    let (server_output, from_server) = tokio::io::duplex(1 << 16);

    let forwarder = tokio::spawn(forward_server_output(from_server, output.clone()));
    let reader_output = output.clone();
    let reader = tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut framer = Framer::default();
        let mut chunk = vec![0; 1 << 16];
        let mut shutdown = false;
        loop {
            while let Some(event) = framer.next() {
                let body = match event {
                    Event::Message(body) => body,
                    Event::Bad { id, why } => {
                        write_error(&reader_output, id, -32700, format!("Parse error: {why}"))
                            .await;
                        continue;
                    }
                };
                let body = match validate(&body) {
                    Ok(body) => body,
                    Err((id, code, message)) => {
                        write_error(&reader_output, id, code, message).await;
                        continue;
                    }
                };
                let method = method_of(&body);
                shutdown |= method.as_deref() == Some("shutdown");
                let header = format!("Content-Length: {}\r\n\r\n", body.len());
                let sent = async {
                    to_server.write_all(header.as_bytes()).await?;
                    to_server.write_all(&body).await
                };
                if sent.await.is_err() {
                    return Ending::Abrupt;
                }
                if method.as_deref() == Some("exit") {
                    // tower-lsp only notices `exit` when the next message arrives; end its
                    // input instead, so the process exits now.
                    return if shutdown {
                        Ending::Clean
                    } else {
                        Ending::Abrupt
                    };
                }
            }
            match stdin.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => framer.push(&chunk[..n]),
            }
        }
        // Dropping `to_server` tells the server the client went away.
        Ending::Abrupt
    });

    tower_lsp::Server::new(server_input, server_output, socket)
        .serve(service)
        .await;
    // The server dropped its output: wait until everything it wrote has reached the client.
    let _ = forwarder.await;
    // The reader has returned already when the server ended because of `exit`.
    match tokio::time::timeout(std::time::Duration::from_millis(500), reader).await {
        Ok(Ok(ending)) => ending,
        _ => Ending::Abrupt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_accepts_messages_and_names_what_is_wrong() {
        assert!(validate(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#).is_ok());
        assert!(validate(br#"{"jsonrpc":"2.0","id":"a","method":"x","params":[]}"#).is_ok());
        assert!(validate(br#"{"jsonrpc":"2.0","id":-9223372036854775808,"method":"x"}"#).is_ok());
        assert!(validate(br#"{"jsonrpc":"2.0","method":"exit"}"#).is_ok());
        assert!(validate(br#"{"jsonrpc":"2.0","id":3,"result":null}"#).is_ok());
        assert_eq!(validate(b"{\"jsonrpc\":").unwrap_err().1, -32700);
        let (id, code, _) = validate(br#"{"jsonrpc":"2.0","id":5,"method":7}"#).unwrap_err();
        assert_eq!((id, code), (json!(5), -32600));
        assert_eq!(validate(br#"[1,2]"#).unwrap_err().1, -32600);
        assert_eq!(
            validate(br#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#)
                .unwrap_err()
                .1,
            -32600
        );
    }

    #[test]
    fn ids_tower_lsp_cannot_answer_and_duplicate_members_are_invalid_requests() {
        for id in [
            "1.5",
            "1e3",
            "1.0",
            "9223372036854775808",
            "-1e30",
            "[1]",
            "{}",
            "true",
        ] {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"shutdown"}}"#);
            let (answered, code, message) = validate(body.as_bytes()).unwrap_err();
            assert_eq!((answered, code), (Value::Null, -32600), "{id}: {message}");
        }
        let (id, code, message) =
            validate(br#"{"jsonrpc":"2.0","id":4,"id":5,"method":"shutdown"}"#).unwrap_err();
        assert_eq!((code, id), (-32600, json!(5)));
        assert!(message.contains("duplicate member \"id\""), "{message}");
        // Duplicates further down are the method's business (serde keeps the last).
        assert!(
            validate(br#"{"jsonrpc":"2.0","id":4,"method":"x","params":{"a":1,"a":2}}"#).is_ok()
        );
    }

    #[test]
    fn dollar_requests_are_answered_method_not_found_and_notifications_pass() {
        let (id, code, _) = validate(br#"{"jsonrpc":"2.0","id":7,"method":"$/x"}"#).unwrap_err();
        assert_eq!((id, code), (json!(7), -32601));
        assert!(
            validate(br#"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":3}}"#).is_ok()
        );
    }

    fn frame(body: &str) -> Vec<u8> {
        format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    /// Feeds `input` in chunks of `chunk` bytes; returns what the framer made of it.
    fn events(input: &[u8], chunk: usize) -> Vec<Event> {
        let mut framer = Framer::default();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            framer.push(piece);
            while let Some(event) = framer.next() {
                out.push(event);
            }
        }
        out
    }

    const GOOD: &str = r#"{"jsonrpc":"2.0","id":2,"method":"shutdown"}"#;
    const BAD: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialized","params":{}}"#;

    fn is_message(event: &Event, body: &str) -> bool {
        *event == Event::Message(body.as_bytes().to_vec())
    }

    #[test]
    fn one_wrong_frame_costs_one_message_whatever_is_wrong_and_however_it_arrives() {
        let headers = [
            "Content-Length: 10".to_owned(),                    // too short
            format!("Content-Length: {}", BAD.len() + 40),      // too long
            format!("Content-Length: {}", BAD.len() + 100_000), // far too long
            "Content-Length: abc".to_owned(),
            "Content-Length: -5".to_owned(),
            "Content-Length: 18446744073709551616".to_owned(), // 2^64
            format!("Content-Length: {}", MAX_MESSAGE_BYTES + 1), // over the limit
            "Content-Type: application/vscode-jsonrpc".to_owned(), // missing
            "garbage without a colon".to_owned(),
        ];
        for header in headers {
            let mut input = format!("{header}\r\n\r\n{BAD}").into_bytes();
            input.extend(frame(GOOD));
            input.extend(frame(GOOD));
            for chunk in [1, 7, 64, input.len()] {
                let got = events(&input, chunk);
                assert_eq!(got.len(), 3, "{header} in chunks of {chunk}: {got:?}");
                assert!(matches!(got[0], Event::Bad { .. }), "{header}: {got:?}");
                assert!(
                    is_message(&got[1], GOOD) && is_message(&got[2], GOOD),
                    "{header}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn a_body_shorter_than_declared_is_answered_with_its_id_before_the_next_frame() {
        let mut input = format!("Content-Length: {}\r\n\r\n{GOOD}", GOOD.len() + 500).into_bytes();
        input.extend(frame(BAD));
        let got = events(&input, input.len());
        assert!(
            matches!(&got[0], Event::Bad { id, .. } if *id == json!(2)),
            "{got:?}"
        );
        assert!(is_message(&got[1], BAD), "{got:?}");
    }

    #[test]
    fn bodies_that_mention_content_length_and_leading_noise_are_fine() {
        let text =
            r#"{"jsonrpc":"2.0","method":"x","params":{"text":"Content-Length: 5\r\n\r\n{}"}}"#;
        let mut input = b"\r\n\r\n".to_vec();
        input.extend(frame(text));
        input.extend(frame(GOOD));
        for chunk in [1, 3, input.len()] {
            let got = events(&input, chunk);
            assert_eq!(got.len(), 2, "{got:?}");
            assert!(
                is_message(&got[0], text) && is_message(&got[1], GOOD),
                "{got:?}"
            );
        }
    }

    #[test]
    fn endless_headers_and_endless_garbage_are_bounded() {
        let mut framer = Framer::default();
        let mut bad = 0;
        for _ in 0..1000 {
            framer.push(&[b'x'; 1024]);
            while let Some(event) = framer.next() {
                assert!(matches!(event, Event::Bad { .. }));
                bad += 1;
            }
            assert!(
                framer.buf.len() <= MAX_HEADER_BYTES + 1024,
                "{}",
                framer.buf.len()
            );
        }
        assert_eq!(bad, 1, "one report for one run of garbage");
        framer.push(&frame(GOOD));
        assert!(is_message(&framer.next().unwrap(), GOOD));
    }
}

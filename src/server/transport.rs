//! Framing between the editor and tower-lsp.
//!
//! tower-lsp 0.20 reads stdin through a tokio-util `FramedRead`, which ends the stream after the
//! first message it cannot decode: one malformed message would stop the server. This proxy reads
//! the frames itself, answers malformed ones with a JSON-RPC error (-32700 parse error, -32600
//! invalid request) and forwards only well-formed messages, so the server keeps serving.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// Messages larger than this are refused (and skipped) rather than buffered.
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

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

/// One frame from the client: its body, or why the headers were unusable.
enum Frame {
    Body(Vec<u8>),
    BadHeaders(String),
    End,
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Frame {
    let mut length: Option<Result<usize, String>> = None;
    let mut saw_header = false;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return Frame::End,
            Ok(_) => {}
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if saw_header {
                break;
            }
            continue;
        }
        saw_header = true;
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad Content-Length {:?}", value.trim())),
                );
            }
        }
    }
    match length {
        Some(Ok(n)) if n <= MAX_MESSAGE_BYTES => {
            let mut body = vec![0; n];
            match reader.read_exact(&mut body).await {
                Ok(_) => Frame::Body(body),
                Err(_) => Frame::End,
            }
        }
        Some(Ok(n)) => Frame::BadHeaders(format!(
            "message of {n} bytes is larger than the {MAX_MESSAGE_BYTES}-byte limit"
        )),
        Some(Err(e)) => Frame::BadHeaders(e),
        None => Frame::BadHeaders("missing Content-Length header".to_owned()),
    }
}

/// Checks the shape tower-lsp will accept; returns the error to send back otherwise.
fn validate(body: &[u8]) -> Result<(), (Value, i64, String)> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| (Value::Null, -32700, format!("Parse error: {e}")))?;
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let invalid = |why: &str| (id.clone(), -32600, format!("Invalid request: {why}"));
    let object = value
        .as_object()
        .ok_or_else(|| invalid("a message must be a JSON object"))?;
    if object.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(invalid("\"jsonrpc\" must be \"2.0\""));
    }
    if !matches!(
        object.get("id"),
        None | Some(Value::Number(_) | Value::String(_) | Value::Null)
    ) {
        return Err(invalid("\"id\" must be a number, a string or null"));
    }
    match object.get("method") {
        Some(Value::String(_)) => match object.get("params") {
            None | Some(Value::Object(_) | Value::Array(_) | Value::Null) => Ok(()),
            Some(_) => Err(invalid("\"params\" must be an object or an array")),
        },
        Some(_) => Err(invalid("\"method\" must be a string")),
        None if object.contains_key("id")
            && (object.contains_key("result") || object.contains_key("error")) =>
        {
            Ok(())
        }
        None => Err(invalid(
            "a message needs a \"method\", or an \"id\" with a \"result\" or an \"error\"",
        )),
    }
}

/// Copies whole frames from the server's output to the client.
async fn forward_server_output<R: AsyncRead + Unpin>(from: R, output: Output) {
    let mut reader = BufReader::new(from);
    while let Frame::Body(body) = read_frame(&mut reader).await {
        write_frame(&output, &body).await;
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
        let mut stdin = BufReader::new(tokio::io::stdin());
        let mut shutdown = false;
        loop {
            match read_frame(&mut stdin).await {
                Frame::End => break,
                Frame::BadHeaders(why) => {
                    write_error(
                        &reader_output,
                        Value::Null,
                        -32700,
                        format!("Parse error: {why}"),
                    )
                    .await
                }
                Frame::Body(body) => match validate(&body) {
                    Ok(()) => {
                        let method = method_of(&body);
                        shutdown |= method.as_deref() == Some("shutdown");
                        let header = format!("Content-Length: {}\r\n\r\n", body.len());
                        let sent = async {
                            to_server.write_all(header.as_bytes()).await?;
                            to_server.write_all(&body).await
                        };
                        if sent.await.is_err() {
                            break;
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
                    Err((id, code, message)) => {
                        write_error(&reader_output, id, code, message).await
                    }
                },
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
}

//! Framing between the client and `tower-lsp-server`. Its decoder ends the whole input stream at
//! the first message it cannot decode, so malformed JSON would stop the server: every message is
//! read and checked here first. A well-formed one is passed on; a malformed one is answered here
//! with the JSON-RPC error it deserves (parse error, invalid request) and the server never sees
//! it. Output from the server and these answers are written whole, one frame at a time.

use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    sync::mpsc,
};
use tower_lsp_server::jsonrpc::Response;

/// Frames larger than this are refused (and skipped) rather than buffered.
const MAX_MESSAGE: usize = 256 << 20;

/// A message's frame: its header put in front of its body in place (a huge file's diagnostics are
/// tens of megabytes, not copied again), in room the caller made for it if any.
pub fn framed(mut body: Vec<u8>) -> Vec<u8> {
    let header = format!("Content-Length: {}\r\n\r\n", body.len());
    body.splice(0..0, header.into_bytes());
    body
}

fn error_frame(id: Value, code: i64, message: &str) -> Vec<u8> {
    let body = json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } });
    framed(body.to_string().into_bytes())
}

/// One message's headers: `Ok(None)` at the end of the input, `Err` for headers without a valid
/// `Content-Length`.
async fn read_headers<R: AsyncRead + Unpin>(input: &mut BufReader<R>) -> std::io::Result<Option<Result<usize, String>>> {
    let mut length: Option<Result<usize, String>> = None;
    let mut line = String::new();
    let mut any = false;
    loop {
        line.clear();
        let mut raw = Vec::new();
        if input.read_until(b'\n', &mut raw).await? == 0 {
            return Ok(None);
        }
        line.push_str(&String::from_utf8_lossy(&raw));
        let header = line.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            if !any {
                continue; // blank lines between messages
            }
            return Ok(Some(length.unwrap_or_else(|| Err("a message without a Content-Length header".into()))));
        }
        any = true;
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().map_err(|_| format!("invalid Content-Length `{}`", value.trim())));
            }
        } else {
            length = Some(Err(format!("invalid header line `{header}`")));
        }
    }
}

/// What [`check`] needs of a message: the kind of JSON it is and the fields that say what it is.
/// Everything else (on open, a document's whole text) is read past, not kept.
#[derive(Default)]
struct Shape {
    object: bool,
    id: Option<Value>,
    method: Option<Value>,
    result_or_error: bool,
}

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(ShapeVisitor)
    }
}

struct ShapeVisitor;

impl<'de> serde::de::Visitor<'de> for ShapeVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        use serde::de::IgnoredAny;
        let mut shape = Shape { object: true, ..Shape::default() };
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "id" => shape.id = Some(map.next_value()?),
                "method" => shape.method = Some(map.next_value()?),
                "result" | "error" => {
                    shape.result_or_error = true;
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(shape)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Shape::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::default())
    }

    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::default())
    }
}

/// A [`tower_lsp_server::jsonrpc::Request`] as the library decodes it, but for its parameters, which are read past: it
/// decodes exactly when a `Request` does, without a copy of a document's whole text.
#[derive(serde::Deserialize)]
struct RequestHead {
    #[serde(rename = "jsonrpc")]
    _jsonrpc: JsonRpc2,
    #[serde(default, rename = "method")]
    _method: String,
    #[serde(default, rename = "params")]
    _params: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "id")]
    _id: Option<tower_lsp_server::jsonrpc::Id>,
}

/// The `jsonrpc` member: `"2.0"`, as the library requires.
struct JsonRpc2;

impl<'de> serde::Deserialize<'de> for JsonRpc2 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<JsonRpc2, D::Error> {
        let version = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        match &*version {
            "2.0" => Ok(JsonRpc2),
            _ => Err(serde::de::Error::custom("expected JSON-RPC version \"2.0\"")),
        }
    }
}

/// What to do with a message body: pass it on, or answer it with an error. Nothing of the body's
/// parameters is copied (on open they are the document's whole text).
fn check(body: &[u8]) -> Result<(), Vec<u8>> {
    let shape: Shape = match serde_json::from_slice(body) {
        Ok(shape) => shape,
        Err(e) => return Err(error_frame(Value::Null, -32700, &format!("Parse error: {e}"))),
    };
    if !shape.object {
        return Err(error_frame(
            Value::Null,
            -32600,
            "Invalid request: a message must be a JSON object (batches are not part of the protocol)",
        ));
    }
    let is_request = shape.method.as_ref().is_some_and(Value::is_string);
    let is_response = shape.id.is_some() && shape.result_or_error;
    let id = shape.id.filter(|id| id.is_string() || id.is_i64() || id.is_u64() || id.is_null()).unwrap_or(Value::Null);
    let decodes = if is_request {
        serde_json::from_slice::<RequestHead>(body).is_ok()
    } else {
        is_response && serde_json::from_slice::<Response>(body).is_ok()
    };
    if decodes {
        Ok(())
    } else {
        Err(error_frame(id, -32600, "Invalid request: not a JSON-RPC 2.0 request, notification or response"))
    }
}

/// Client → server. Ends at the end of the client's input.
pub async fn pump_input<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(input: R, mut server: W, answers: mpsc::UnboundedSender<Vec<u8>>) {
    let mut input = BufReader::new(input);
    loop {
        let length = match read_headers(&mut input).await {
            Ok(Some(Ok(length))) => length,
            Ok(Some(Err(problem))) => {
                let _ = answers.send(error_frame(Value::Null, -32700, &format!("Parse error: {problem}")));
                continue;
            }
            Ok(None) | Err(_) => break,
        };
        if length > MAX_MESSAGE {
            let _ = answers.send(error_frame(Value::Null, -32600, "Invalid request: the message is too large"));
            if tokio::io::copy(&mut (&mut input).take(length as u64), &mut tokio::io::sink()).await.is_err() {
                break;
            }
            continue;
        }
        let mut body = vec![0; length];
        if input.read_exact(&mut body).await.is_err() {
            break;
        }
        match check(&body) {
            Ok(()) => {
                // The header, then the body itself: no second copy of a large message.
                let header = format!("Content-Length: {}\r\n\r\n", body.len());
                if server.write_all(header.as_bytes()).await.is_err()
                    || server.write_all(&body).await.is_err()
                    || server.flush().await.is_err()
                {
                    break;
                }
            }
            Err(answer) => {
                crate::log(format!(
                    "malformed message answered with an error: {}",
                    String::from_utf8_lossy(&body).chars().take(200).collect::<String>()
                ));
                let _ = answers.send(answer);
            }
        }
    }
    let _ = server.shutdown().await;
}

/// Server → the writer, frame by frame. Ends when the server closes its output.
pub async fn pump_output<R: AsyncRead + Unpin>(server: R, frames: mpsc::UnboundedSender<Vec<u8>>) {
    let mut server = BufReader::new(server);
    while let Ok(Some(Ok(length))) = read_headers(&mut server).await {
        let mut body = vec![0; length];
        if server.read_exact(&mut body).await.is_err() {
            break;
        }
        if frames.send(framed(body)).is_err() {
            break;
        }
    }
}

/// Writes frames to the client until every sender is gone: on a thread of its own, blocking, so
/// that a frame goes from the channel to the output with no other thread between (tokio's stdout
/// copies it into a buffer of its own and hands that to a blocking thread; a file's thousand
/// diagnostics are a frame of 300 KB after every edit).
pub fn write_frames(mut output: impl std::io::Write, mut frames: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(frame) = frames.blocking_recv() {
        if output.write_all(&frame).and_then(|()| output.flush()).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_messages() {
        assert!(check(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#).is_ok());
        assert!(check(br#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#).is_ok());
        assert!(check(br#"{"jsonrpc":"2.0","id":1,"result":null}"#).is_ok());
        let answer = |body: &[u8]| String::from_utf8(check(body).unwrap_err()).unwrap();
        assert!(answer(b"{not json").contains("-32700"));
        assert!(answer(b"[1,2]").contains("-32600"));
        assert!(answer(br#"{"jsonrpc":"2.0","id":7}"#).contains(r#""id":7"#));
        assert!(answer(br#"{"id":3,"method":"x"}"#).contains("-32600"));
    }

    /// A request passes exactly when the library decodes it, though its parameters are not copied.
    #[test]
    fn requests_pass_exactly_when_the_library_decodes_them() {
        for body in [
            r#"{"jsonrpc":"2.0","method":"m","params":{"text":"a\nb"}}"#,
            r#"{"jsonrpc":"2.0","id":"x","method":"m","params":[1,{"a":null}]}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":-7,"method":"m","extra":true}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":[1],"method":"m"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"m"}"#,
            r#"{"jsonrpc":2.0,"id":1,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","method":"n"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":}}"#,
        ] {
            let library = serde_json::from_slice::<tower_lsp_server::jsonrpc::Request>(body.as_bytes()).is_ok();
            assert_eq!(check(body.as_bytes()).is_ok(), library, "{body}");
        }
    }
}

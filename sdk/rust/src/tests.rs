//! The client against fake brokers: the public one (`testing::FakeBroker`) for what a well-behaved
//! broker answers, and a scripted one for the rest (a thread serving a Unix socket in a temporary
//! directory, answering each request as the test's script says, down to a reply cut short, and
//! keeping every request it read).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::testing::FakeBroker;
use crate::{Client, Error, Message, Response, MAX_LINE};

/// What the fake broker writes for a request, and whether it then closes the connection.
type Answer = (Vec<u8>, bool);

/// The script's view of a request: which connection (0, 1, …) it came on, and the request.
type Script = dyn Fn(usize, &Value) -> Answer + Send + Sync;

struct FakeScript {
    _dir: tempfile::TempDir,
    path: PathBuf,
    seen: Arc<Mutex<Vec<(usize, Value)>>>,
}

impl FakeScript {
    /// Serves connections one after another, answering each request line by `script`.
    fn serve(script: impl Fn(usize, &Value) -> Answer + Send + Sync + 'static) -> FakeScript {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (script, log): (Box<Script>, _) = (Box::new(script), seen.clone());
        // Detached: it blocks in accept until the test process ends.
        std::thread::spawn(move || {
            for (connection, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut lines = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    let request: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    line.clear();
                    log.lock().unwrap().push((connection, request.clone()));
                    let (bytes, close) = script(connection, &request);
                    if stream.write_all(&bytes).is_err() || close {
                        break;
                    }
                }
            }
        });
        FakeScript { _dir: dir, path, seen }
    }

    /// A broker that says `hello` and answers every other request with `result(request)`.
    fn answering(result: impl Fn(&Value) -> Value + Send + Sync + 'static) -> FakeScript {
        FakeScript::serve(move |_, request| match request["op"].as_str() {
            Some("hello") => hello(request),
            _ => ok(request, result(request)),
        })
    }

    fn client(&self) -> Client {
        Client::new(&self.path)
    }

    /// The requests read so far, each with its connection's number.
    fn seen(&self) -> Vec<(usize, Value)> {
        self.seen.lock().unwrap().clone()
    }

    /// How many connections the client opened.
    fn connections(&self) -> usize {
        self.seen().iter().map(|(c, _)| c + 1).max().unwrap_or(0)
    }
}

fn line(value: Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&value).unwrap();
    bytes.push(b'\n');
    bytes
}

fn hello(request: &Value) -> Answer {
    ok(request, json!({ "protocol": "1.0", "agent": "worker" }))
}

fn ok(request: &Value, result: Value) -> Answer {
    (line(json!({ "id": request["id"], "ok": true, "result": result })), false)
}

fn error(id: &Value, code: &str, message: &str) -> Answer {
    (line(json!({ "id": id, "ok": false, "error": { "code": code, "message": message } })), false)
}

/// The requests after each connection's `hello`, without their `id`.
fn calls(broker: &FakeScript) -> Vec<Value> {
    broker
        .seen()
        .into_iter()
        .map(|(_, mut r)| {
            r.as_object_mut().unwrap().remove("id");
            r
        })
        .filter(|r| r["op"] != "hello")
        .collect()
}

#[test]
fn every_operation_sends_its_request_and_reads_its_result() {
    let broker = FakeScript::answering(|r| match r["op"].as_str().unwrap() {
        "http" => json!({ "status": 201, "body": format!("{} {}", r["method"].as_str().unwrap(), r["body"].as_str().unwrap_or("-")) }),
        "file_read" => json!({ "content": "file text" }),
        "file_write" => json!({ "written": r["content"].as_str().unwrap().len() }),
        "env_get" if r["name"] == "REGION" => json!({ "value": "eu" }),
        "env_get" => json!({ "value": null }),
        "secret_get" => json!({ "value": "s3cr3t" }),
        "log" => Value::Null,
        "send_message" => json!({ "delivered": 7 }),
        "receive_message" => json!({ "from": "echo", "seq": 3, "payload": { "answer": 42 } }),
        op => panic!("unexpected {op}"),
    });
    let client = broker.client();
    let created = |body: &str| Response { status: 201, body: body.into() };
    assert_eq!(client.agent().unwrap(), "worker");
    assert_eq!(client.get("https://a.example/x").unwrap(), created("GET -"));
    assert_eq!(client.post("https://a.example/x", "p").unwrap(), created("POST p"));
    assert_eq!(client.put("https://a.example/x", "q").unwrap(), created("PUT q"));
    assert_eq!(client.delete("https://a.example/x").unwrap(), created("DELETE -"));
    let patched = client.request("PATCH", "https://a.example/x", &[("content-type", "application/json")], Some("{}")).unwrap();
    assert!(patched.is_success());
    assert_eq!(patched.text().unwrap(), "PATCH {}");
    assert_eq!(client.read("notes/a.txt").unwrap(), "file text");
    assert_eq!(client.write("notes/a.txt", "hello").unwrap(), 5);
    assert_eq!(client.append("notes/a.txt", "!").unwrap(), 1);
    assert_eq!(client.env("REGION").unwrap().as_deref(), Some("eu"));
    assert_eq!(client.env("HOME").unwrap(), None);
    assert_eq!(client.secret("API_TOKEN").unwrap().as_deref(), Some("s3cr3t"));
    client.log("warn", "careful").unwrap();
    assert_eq!(client.send("echo", &json!({ "question": 6 })).unwrap(), 7);
    let message = Message { from: "echo".into(), seq: 3, payload: json!({ "answer": 42 }) };
    assert_eq!(client.receive(Duration::from_millis(1500)).unwrap(), Some(message));
    assert_eq!(client.call("env_get", json!({ "name": "REGION" })).unwrap(), json!({ "value": "eu" }));

    // One connection, opened by `hello` (id 0), then ids counting up.
    let seen = broker.seen();
    assert_eq!(broker.connections(), 1);
    assert_eq!(seen[0].1, json!({ "id": 0, "op": "hello", "protocol": "1.0", "sdk": format!("rust {}", env!("CARGO_PKG_VERSION")) }));
    assert!(seen.iter().enumerate().all(|(i, (_, r))| r["id"] == json!(i)), "{seen:?}");
    let url = "https://a.example/x";
    let no_headers = json!({});
    assert_eq!(
        calls(&broker),
        [
            json!({ "op": "http", "method": "GET", "url": url, "headers": no_headers }),
            json!({ "op": "http", "method": "POST", "url": url, "headers": no_headers, "body": "p" }),
            json!({ "op": "http", "method": "PUT", "url": url, "headers": no_headers, "body": "q" }),
            json!({ "op": "http", "method": "DELETE", "url": url, "headers": no_headers }),
            json!({ "op": "http", "method": "PATCH", "url": url, "headers": { "content-type": "application/json" }, "body": "{}" }),
            json!({ "op": "file_read", "path": "notes/a.txt" }),
            json!({ "op": "file_write", "path": "notes/a.txt", "content": "hello", "append": false }),
            json!({ "op": "file_write", "path": "notes/a.txt", "content": "!", "append": true }),
            json!({ "op": "env_get", "name": "REGION" }),
            json!({ "op": "env_get", "name": "HOME" }),
            json!({ "op": "secret_get", "name": "API_TOKEN" }),
            json!({ "op": "log", "level": "warn", "message": "careful" }),
            json!({ "op": "send_message", "to": "echo", "payload": { "question": 6 } }),
            json!({ "op": "receive_message", "timeout_ms": 1500 }),
            json!({ "op": "env_get", "name": "REGION" }),
        ]
    );
}

#[test]
fn a_response_body_parses_as_json_or_says_it_is_not() {
    let response = Response { status: 200, body: r#"{"items": [1, 2]}"#.into() };
    assert_eq!(response.json().unwrap()["items"][1], 2);
    let not_json = Response { status: 404, body: "<html>".into() };
    assert!(!not_json.is_success());
    assert!(matches!(not_json.json(), Err(Error::Failed { message }) if message.contains("not JSON")));
}

#[test]
fn each_error_code_is_its_variant_and_keeps_the_connection() {
    // The broker answers a read of `CODE` with that error code.
    let broker = FakeScript::serve(|_, r| match r["op"].as_str() {
        Some("hello") => hello(r),
        _ => error(&r["id"], r["path"].as_str().unwrap(), &format!("why {}", r["path"].as_str().unwrap())),
    });
    let client = broker.client();
    let message = |code: &str| format!("why {code}");
    let cases = [
        ("denied", Error::Denied { message: message("denied"), rule: None }),
        ("audit_failed", Error::AuditFailed { message: message("audit_failed") }),
        ("unidentified", Error::Unidentified { message: message("unidentified") }),
        ("bad_request", Error::BadRequest { message: message("bad_request") }),
        ("limited", Error::Limited { message: message("limited") }),
        ("failed", Error::Failed { message: message("failed") }),
        ("from_the_future", Error::Other { code: "from_the_future".into(), message: message("from_the_future") }),
    ];
    for (code, expected) in cases {
        let error = client.read(code).unwrap_err();
        assert_eq!(error, expected);
        assert_eq!(error.code(), code);
        assert_eq!(error.to_string(), format!("{code}: why {code}"));
        let _: &dyn std::error::Error = &error;
    }
    assert_eq!(broker.connections(), 1, "an error with the request's id leaves the connection open");
}

#[test]
fn a_denial_carries_the_deciding_rule() {
    let broker = FakeBroker::builder()
        .deny("file_write", "deny: [\"file_system_write\"]")
        .deny("send_message", "deny: send_message(to) if to == \"vault\"")
        .deny("http", "")
        .agent("worker")
        .start();
    let client = Client::new(broker.socket_path());
    let denied = client.write("a.txt", "x").unwrap_err();
    assert_eq!(denied.rule(), Some("deny: [\"file_system_write\"]"));
    assert!(matches!(&denied, Error::Denied { message, .. } if message.starts_with("policy denies file_system_write for agent worker")));
    assert_eq!(client.send("vault", &json!(1)).unwrap_err().rule(), Some("deny: send_message(to) if to == \"vault\""));
    let unnamed = client.get("https://a.example/").unwrap_err();
    assert_eq!((unnamed.code(), unnamed.rule()), ("denied", None), "no rule decided it: allow-list miss");
}

#[test]
fn a_receive_that_times_out_is_none() {
    let broker = FakeScript::answering(|_| Value::Null);
    assert_eq!(broker.client().receive(Duration::from_millis(250)).unwrap(), None);
    assert_eq!(calls(&broker), [json!({ "op": "receive_message", "timeout_ms": 250 })]);
}

#[test]
fn a_16_mib_payload_goes_and_comes_back_whole() {
    let broker = FakeScript::answering(|r| match r["op"].as_str().unwrap() {
        "file_write" => json!({ "written": r["content"].as_str().unwrap().len() }),
        _ => json!({ "content": "é".repeat(8 << 20) }),
    });
    let client = broker.client();
    let payload = "x".repeat(16 << 20);
    assert_eq!(client.write("big.txt", &payload).unwrap(), 16 << 20);
    assert_eq!(client.read("big.txt").unwrap(), "é".repeat(8 << 20));
    // Past the broker's line it is refused here, unsent, and the connection stays usable.
    let too_big = "x".repeat(MAX_LINE);
    let refused = client.write("big.txt", &too_big).unwrap_err();
    assert!(matches!(&refused, Error::BadRequest { message } if message.contains("nothing was sent")), "{refused}");
    assert_eq!(client.write("small.txt", "y").unwrap(), 1);
    assert_eq!(calls(&broker).len(), 3);
    assert_eq!(broker.connections(), 1);
}

#[test]
fn a_broker_that_closes_mid_reply_is_a_transport_error_and_the_next_call_reconnects() {
    let broker = FakeScript::serve(|connection, r| match (connection, r["op"].as_str()) {
        (_, Some("hello")) => hello(r),
        (0, _) => (br#"{"id":1,"ok":true,"result":{"con"#.to_vec(), true),
        (1, _) => (Vec::new(), true),
        _ => ok(r, json!({ "content": "again" })),
    });
    let client = broker.client();
    let cut = client.read("a.txt").unwrap_err();
    assert!(matches!(&cut, Error::Transport { message } if message.contains("mid-reply")), "{cut}");
    let silent = client.read("a.txt").unwrap_err();
    assert!(matches!(&silent, Error::Transport { message } if message.contains("without replying")), "{silent}");
    assert_eq!(client.read("a.txt").unwrap(), "again");
    assert_eq!(broker.connections(), 3);
}

#[test]
fn an_error_without_id_closes_the_connection_and_the_next_call_reconnects() {
    let broker = FakeScript::serve(|connection, r| match (connection, r["op"].as_str()) {
        (_, Some("hello")) => hello(r),
        (0, _) => {
            let (bytes, _) = error(&Value::Null, "limited", "too many bytes buffered: this connection is closed");
            (bytes, true)
        }
        _ => ok(r, json!({ "value": "eu" })),
    });
    let client = broker.client();
    assert!(matches!(client.env("REGION").unwrap_err(), Error::Limited { .. }));
    assert_eq!(client.env("REGION").unwrap().as_deref(), Some("eu"));
    let seen = broker.seen();
    let ops: Vec<(usize, &str)> = seen.iter().map(|(c, r)| (*c, r["op"].as_str().unwrap())).collect();
    assert_eq!(ops, [(0, "hello"), (0, "env_get"), (1, "hello"), (1, "env_get")]);
}

#[test]
fn another_protocol_major_fails_at_once_naming_both_versions() {
    // A broker that refuses this SDK's version, and one that answers with another major.
    let refusing = FakeScript::serve(|_, r| {
        error(&r["id"], "version", "the broker speaks protocol 2.1; this SDK speaks 1.0: use an SDK of major version 2")
    });
    let newer = FakeScript::serve(|_, r| ok(r, json!({ "protocol": "2.0", "agent": "worker" })));
    for (broker, version) in [(&refusing, "2.1"), (&newer, "2.0")] {
        let error = Client::connect(&broker.path).unwrap_err();
        assert_eq!(error, Error::VersionMismatch { broker: version.into(), sdk: "1.0".into() });
        let shown = error.to_string();
        assert!(shown.contains(&format!("protocol {version}")) && shown.contains("protocol 1.0"), "{shown}");
        assert_eq!(error.code(), "version");
        // Never retried: one `hello`, and nothing else.
        assert_eq!(broker.seen().len(), 1, "{:?}", broker.seen());
    }
    // A minor version of the same major is fine.
    let minor = FakeScript::serve(|_, r| ok(r, json!({ "protocol": "1.7", "agent": "worker" })));
    assert_eq!(Client::connect(&minor.path).unwrap().agent().unwrap(), "worker");
}

#[test]
fn a_connection_from_outside_the_sandbox_is_unidentified() {
    let broker = FakeScript::serve(|_, _| {
        let (bytes, _) = error(&Value::Null, "unidentified", "this connection is not from agent worker's sandbox");
        (bytes, true)
    });
    let error = Client::connect(&broker.path).unwrap_err();
    assert!(matches!(&error, Error::Unidentified { message } if message.contains("sandbox")), "{error}");
}

#[test]
fn a_missing_broker_or_a_reply_that_is_no_reply_is_a_transport_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.sock");
    let error = Client::new(&missing).read("a.txt").unwrap_err();
    assert!(matches!(&error, Error::Transport { message } if message.contains(&missing.display().to_string())), "{error}");

    let broker = FakeScript::serve(|_, r| match (r["op"].as_str(), r["path"].as_str()) {
        (Some("hello"), _) => hello(r),
        (_, Some("junk")) => (b"not json\n".to_vec(), false),
        (_, Some("other")) => (line(json!({ "id": 99, "ok": true, "result": null })), false),
        (_, Some("typed")) => ok(r, json!({ "content": 5 })),
        _ => (line(json!({ "id": r["id"], "ok": false })), false),
    });
    let client = broker.client();
    let cases = [
        ("junk", "not JSON"),
        ("other", "another request"),
        ("typed", "not what the protocol says"),
        ("empty", "neither a result nor an error"),
    ];
    for (path, expected) in cases {
        let error = client.read(path).unwrap_err();
        assert!(matches!(&error, Error::Transport { message } if message.contains(expected)), "{expected}: {error}");
    }
    assert!(matches!(client.call("log", json!("text")), Err(Error::BadRequest { .. })));
}

#[test]
fn threads_take_turns_on_one_connection() {
    let broker = FakeScript::answering(|r| json!({ "value": r["name"] }));
    let client = Arc::new(broker.client());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            std::thread::spawn(move || (0..20).all(|j| client.env(&format!("V{i}_{j}")).unwrap() == Some(format!("V{i}_{j}"))))
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().unwrap()));
    assert_eq!(broker.connections(), 1);
    assert_eq!(calls(&broker).len(), 160);
}

/// The crate's functions use a live `testing::FakeBroker`, whatever `SYMBIONT_BROKER` says.
#[test]
fn the_functions_use_a_live_fake_broker() {
    let url = "https://a.example/";
    let broker = FakeBroker::builder().http(url, 200, "[1]").file("a", "c").env("X", "x").secret("Y", "y").start();
    assert_eq!(crate::net::get(url).unwrap().json().unwrap(), json!([1]));
    assert_eq!(crate::net::post(String::from(url), "b").unwrap().status, 200);
    crate::net::put(url, "b").unwrap();
    crate::net::delete(url).unwrap();
    crate::net::request("HEAD", url, &[], None).unwrap();
    assert_eq!(crate::fs::read("a").unwrap(), "c");
    assert_eq!(crate::fs::write("a", "c").unwrap() + crate::fs::append("a", "c").unwrap(), 2);
    assert_eq!(crate::env::get("X").unwrap().as_deref(), Some("x"));
    assert_eq!(crate::secrets::get("Y").unwrap().as_deref(), Some("y"));
    crate::log("info", "hi").unwrap();
    assert_eq!(crate::send("b", &json!(null)).unwrap(), 1);
    assert_eq!(crate::receive(Duration::ZERO).unwrap(), None);
    let ops: Vec<Value> = broker.requests().into_iter().map(|r| r["op"].clone()).collect();
    let expected = ["hello", "http", "http", "http", "http", "http", "file_read", "file_write", "file_write"];
    let expected = expected.into_iter().chain(["env_get", "secret_get", "log", "send_message", "receive_message"]);
    assert_eq!(ops, expected.map(Value::from).collect::<Vec<_>>());
    assert_eq!(broker.files()["a"], "cc");
}

/// The only test that sets `SYMBIONT_BROKER`, holding the turn fake brokers take, so that none
/// overrides it meanwhile: with none alive, the crate's functions use the process's client.
#[test]
fn the_functions_use_the_broker_named_by_symbiont_broker() {
    let _turn = crate::testing::Turn::take();
    let broker = FakeScript::answering(|_| json!({ "value": "from the environment's broker" }));
    std::env::set_var("SYMBIONT_BROKER", &broker.path);
    assert_eq!(crate::env::get("X").unwrap().as_deref(), Some("from the environment's broker"));
    assert_eq!(calls(&broker), [json!({ "op": "env_get", "name": "X" })]);
}

#[test]
fn the_input_is_the_runs_json_or_null() {
    assert_eq!(crate::parse_input(None).unwrap(), Value::Null);
    assert_eq!(crate::parse_input(Some(r#"{"n": 1}"#)).unwrap(), json!({ "n": 1 }));
    assert!(matches!(crate::parse_input(Some("{")), Err(Error::Transport { message }) if message.contains("SYMBIONT_INPUT")));
}

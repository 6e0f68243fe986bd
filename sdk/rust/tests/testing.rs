//! The public fake broker (`symbiont::testing`) behaves as the real broker does for an agent's
//! tests: the crate's functions, as an agent calls them, against `FakeBroker`. The tests run on
//! several threads at once, as an agent's do: they take turns through the broker itself.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use symbiont::testing::{FakeBroker, DENIABLE};
use symbiont::{Error, Message};

const RULE: &str = r#"deny: thing(name) if name == "x" && `quoted` == "y""#;

/// A call of the crate's functions.
type Call = Box<dyn Fn() -> Result<(), Error>>;

/// Each decided op: a call that makes it, and the operation the real broker's denial names.
fn denials() -> Vec<(&'static str, Call, &'static str)> {
    vec![
        ("http", Box::new(|| symbiont::net::get("https://api.example.com/").map(drop)), "policy denies https_request for agent agent"),
        ("http", Box::new(|| symbiont::net::get("http://api.example.com/").map(drop)), "policy denies http_request for agent agent"),
        ("file_read", Box::new(|| symbiont::fs::read("a.txt").map(drop)), "policy denies file_read for agent agent"),
        ("file_write", Box::new(|| symbiont::fs::append("a.txt", "x").map(drop)), "policy denies file_system_write for agent agent"),
        ("env_get", Box::new(|| symbiont::env::get("HOME").map(drop)), "policy denies env_access for agent agent"),
        ("secret_get", Box::new(|| symbiont::secrets::get("DB_PASSWORD").map(drop)), "policy denies secret_access for agent agent"),
        (
            "send_message",
            Box::new(|| symbiont::send("vault", &json!(1)).map(drop)),
            "policy denies send_message to `vault` for agent agent",
        ),
    ]
}

#[test]
fn a_denial_carries_its_rule() {
    for (op, call, says) in denials() {
        let broker = FakeBroker::builder().file("a.txt", "kept").http("https://api.example.com/", 200, "").deny(op, RULE).start();
        let denied = call().unwrap_err();
        assert_eq!(denied, Error::Denied { message: format!("{says} by `{RULE}` (Denied)"), rule: Some(RULE.into()) }, "{op}");
        assert_eq!(broker.files()["a.txt"], "kept", "a denied request does nothing");
        assert_eq!(broker.sent(), []);
    }
}

#[test]
fn a_denial_without_a_rule_and_a_denied_receive() {
    let broker = FakeBroker::builder()
        .deny("file_read", "")
        .deny("receive_message", "deny: receive_message")
        .inbox("peer", json!(1))
        .inbox("peer", json!(2))
        .start();
    let denied = symbiont::fs::read("a").unwrap_err();
    assert_eq!((denied.code(), denied.rule()), ("denied", None));
    assert!(denied.to_string().ends_with("policy denies file_read for agent agent (NotAllowed)"), "{denied}");
    assert_eq!(symbiont::receive(Duration::ZERO).unwrap(), None, "a denied message is consumed");
    assert_eq!(broker.inbox(), [("peer".to_string(), json!(2))]);
}

#[test]
fn files_round_trip_and_a_missing_file_fails() {
    let broker = FakeBroker::builder().file("in/data.txt", "a").start();
    assert_eq!(symbiont::fs::read("in/data.txt").unwrap(), "a");
    assert_eq!(symbiont::fs::write("out/r.txt", "é").unwrap(), 2);
    assert_eq!(symbiont::fs::append("out/r.txt", "2").unwrap(), 1);
    symbiont::fs::append("out/new.txt", "n").unwrap();
    let missing = symbiont::fs::read("missing.txt").unwrap_err();
    assert!(matches!(&missing, Error::Failed { message } if message.starts_with("`missing.txt`: No such file")), "{missing}");
    let files: Vec<(String, String)> = broker.files().into_iter().collect();
    let expected = [("in/data.txt", "a"), ("out/new.txt", "n"), ("out/r.txt", "é2")];
    assert_eq!(files, expected.map(|(p, c)| (p.to_string(), c.to_string())));
}

#[test]
fn a_path_in_another_spelling_is_a_bad_request() {
    let broker = FakeBroker::start();
    for path in ["", "/etc/passwd", "./a", "a/.", "a/../b", "a//b", "a/", "a\0b"] {
        let refused = symbiont::fs::write(path, "x").unwrap_err();
        assert!(matches!(&refused, Error::BadRequest { message } if message.contains("is refused")), "{path:?}: {refused}");
    }
    assert!(broker.files().is_empty());
}

#[test]
fn http_routes_by_exact_url() {
    let broker = FakeBroker::builder()
        .http("https://api.example.com/v1/items", 200, "[1]")
        .http("https://api.example.com/v1/gone", 410, "gone")
        .start();
    assert_eq!(symbiont::net::get("https://api.example.com/v1/items").unwrap().json().unwrap(), json!([1]));
    assert_eq!(symbiont::net::post("https://api.example.com/v1/gone", "{}").unwrap().status, 410);
    let unknown = symbiont::net::get("https://user@Unknown.Example:8443/v1/items").unwrap_err();
    assert!(matches!(&unknown, Error::Failed { message } if message.starts_with("the host unknown.example does not resolve")), "{unknown}");
    assert!(matches!(symbiont::net::get("https://api.example.com/v1/items?page=2"), Err(Error::Failed { .. })));
    assert!(matches!(symbiont::net::get("ftp://api.example.com/"), Err(Error::BadRequest { .. })));
    let posted = broker.requests().into_iter().find(|r| r["method"] == "POST").unwrap();
    assert_eq!(posted["body"], "{}");
}

#[test]
fn env_by_exact_name_and_secrets_by_canonical_name() {
    let _broker = FakeBroker::builder().env("REGION", "eu").secret("Db_Password", "pw").start();
    assert_eq!(symbiont::env::get("REGION").unwrap().as_deref(), Some("eu"));
    assert_eq!(symbiont::env::get("region").unwrap(), None);
    assert_eq!(symbiont::secrets::get("DB_PASSWORD").unwrap().as_deref(), Some("pw"));
    assert_eq!(symbiont::secrets::get("db_password").unwrap().as_deref(), Some("pw"));
    assert!(matches!(symbiont::secrets::get("db-password"), Err(Error::BadRequest { .. })));
}

#[test]
fn the_inbox_is_first_in_first_out_and_empty_answers_none_at_once() {
    let broker = FakeBroker::builder().inbox("a", json!({ "n": 1 })).inbox("b", json!("x")).start();
    broker.deliver("a", json!({ "n": 2 }));
    let message = |from: &str, seq, payload| Some(Message { from: from.into(), seq, payload });
    assert_eq!(symbiont::receive(Duration::from_secs(1)).unwrap(), message("a", 1, json!({ "n": 1 })));
    assert_eq!(symbiont::receive(Duration::ZERO).unwrap(), message("b", 1, json!("x")));
    assert_eq!(symbiont::receive(Duration::ZERO).unwrap(), message("a", 2, json!({ "n": 2 })));
    let started = Instant::now();
    assert_eq!(symbiont::receive(Duration::from_secs(30)).unwrap(), None);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(broker.inbox().is_empty());
}

#[test]
fn sent_logs_and_requests_are_recorded() {
    let broker = FakeBroker::builder().agent("writer").start();
    assert_eq!(symbiont::send("reviewer", &json!({ "diff": 1 })).unwrap(), 1);
    assert_eq!(symbiont::send("reviewer", &json!(2)).unwrap(), 2);
    assert_eq!(symbiont::send("other", &json!(3)).unwrap(), 1);
    symbiont::log("info", "hello").unwrap();
    symbiont::log("WARN", "careful").unwrap();
    assert!(matches!(symbiont::log("not a level", "x"), Err(Error::BadRequest { .. })));
    let sent = [("reviewer", json!({ "diff": 1 })), ("reviewer", json!(2)), ("other", json!(3))];
    assert_eq!(broker.sent(), sent.map(|(to, p)| (to.to_string(), p)));
    assert_eq!(broker.logs(), [("info", "hello"), ("warn", "careful")].map(|(l, m)| (l.to_string(), m.to_string())));
    let requests = broker.requests();
    assert_eq!(requests[0], json!({ "id": 0, "op": "hello", "protocol": "1.0", "sdk": format!("rust {}", env!("CARGO_PKG_VERSION")) }));
    let ops: Vec<&str> = requests[1..].iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(ops, ["send_message", "send_message", "send_message", "log", "log", "log"]);
}

#[test]
fn the_input_while_the_broker_is_alive() {
    let broker = FakeBroker::builder().input(json!({ "name": "x" })).start();
    assert_eq!(symbiont::input().unwrap(), json!({ "name": "x" }));
    drop(broker);
    let _broker = FakeBroker::start();
    assert_eq!(symbiont::input().unwrap(), Value::Null);
}

#[test]
fn a_second_broker_after_the_first_gets_a_fresh_connection() {
    let first = FakeBroker::builder().file("a", "first").start();
    assert_eq!(symbiont::fs::read("a").unwrap(), "first");
    let (socket, dir) = (first.socket_path().to_path_buf(), first.socket_path().parent().unwrap().to_path_buf());
    drop(first);
    assert!(!socket.exists() && !dir.exists(), "the socket and its directory are removed");
    let second = FakeBroker::builder().file("a", "second").start();
    assert_eq!(symbiont::fs::read("a").unwrap(), "second");
    assert_eq!(second.requests().iter().filter(|r| r["op"] == "hello").count(), 1, "a new connection, with its own hello");
}

#[test]
fn brokers_on_other_threads_wait_their_turn() {
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let broker = FakeBroker::builder().file("n", i.to_string()).start();
                let read = symbiont::fs::read("n").unwrap();
                std::thread::sleep(Duration::from_millis(20));
                (read, broker.files()["n"].clone())
            })
        })
        .collect();
    for (i, thread) in threads.into_iter().enumerate() {
        assert_eq!(thread.join().unwrap(), (i.to_string(), i.to_string()));
    }
}

#[test]
fn a_second_broker_in_the_same_thread_panics_rather_than_wait() {
    let _first = FakeBroker::start();
    let second = std::panic::catch_unwind(FakeBroker::start).unwrap_err();
    let said = second.downcast_ref::<String>().cloned().or_else(|| second.downcast_ref::<&str>().map(|s| s.to_string())).unwrap();
    assert!(said.contains("already alive in this thread"), "{said}");
}

#[test]
fn bad_options_panic_naming_them() {
    let cases: [(&str, fn()); 3] = [
        ("is not a broker op a policy decides", || drop(FakeBroker::builder().deny("log", "deny: log"))),
        ("the secret name \"no spaces\" is refused", || drop(FakeBroker::builder().secret("no spaces", "x"))),
        ("is not between 100 and 599", || drop(FakeBroker::builder().http("https://a.example/", 99, ""))),
    ];
    for (says, build) in cases {
        let panic = std::panic::catch_unwind(build).unwrap_err();
        let said = panic.downcast_ref::<String>().unwrap();
        assert!(said.contains(says), "{said}");
    }
    assert_eq!(DENIABLE, ["http", "file_read", "file_write", "env_get", "secret_get", "send_message", "receive_message"]);
}

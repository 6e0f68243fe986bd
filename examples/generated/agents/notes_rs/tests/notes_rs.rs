//! notes_rs's tests: its code against the SDK's fake broker, without a sandbox.

use symbiont::testing::FakeBroker;

use notes_rs as agent;

#[test]
fn fetch_url_returns_the_body() {
    let _broker = FakeBroker::builder().http("https://example.com/data", 200, "hello").start();
    assert_eq!(agent::fetch_url("https://example.com/data").unwrap(), "hello");
}

#[test]
fn fetch_url_is_denied_naming_the_rule() {
    let rule = r#"deny: ["https_request"]"#;
    let _broker = FakeBroker::builder().deny("http", rule).start();
    let error = agent::fetch_url("https://example.com/data").unwrap_err();
    let error = error.downcast_ref::<symbiont::Error>().expect("the SDK's error");
    assert_eq!(error.rule(), Some(rule));
}

#[test]
fn read_file_reads_the_workspace() {
    let _broker = FakeBroker::builder().file("notes.txt", "hello").start();
    assert_eq!(agent::read_file("notes.txt").unwrap(), "hello");
}

#[test]
fn read_file_is_denied_naming_the_rule() {
    let rule = r#"deny: ["file_read"]"#;
    let _broker = FakeBroker::builder().deny("file_read", rule).start();
    let error = agent::read_file("name").unwrap_err();
    assert_eq!(error.rule(), Some(rule));
}

#[test]
fn write_file_writes_the_workspace() {
    let broker = FakeBroker::start();
    assert_eq!(agent::write_file("out.txt", "hello").unwrap(), 5);
    assert_eq!(broker.files()["out.txt"], "hello");
}

#[test]
fn write_file_is_denied_naming_the_rule() {
    let rule = r#"deny: ["file_system_write"]"#;
    let _broker = FakeBroker::builder().deny("file_write", rule).start();
    let error = agent::write_file("out.txt", "hello").unwrap_err();
    assert_eq!(error.rule(), Some(rule));
}

#[test]
fn read_env_reads_declared_variables_only() {
    let _broker = FakeBroker::builder().env("REGION", "eu-west-1").start();
    assert_eq!(agent::read_env("REGION").unwrap().as_deref(), Some("eu-west-1"));
    assert_eq!(agent::read_env("HOME").unwrap(), None);
}

#[test]
fn read_env_is_denied_naming_the_rule() {
    let rule = r#"deny: ["env_access"]"#;
    let _broker = FakeBroker::builder().deny("env_get", rule).start();
    let error = agent::read_env("name").unwrap_err();
    assert_eq!(error.rule(), Some(rule));
}

#[test]
fn read_secret_reads_by_name() {
    let _broker = FakeBroker::builder().secret("api_key", "s3cr3t").start();
    assert_eq!(agent::read_secret("api_key").unwrap().as_deref(), Some("s3cr3t"));
}

#[test]
fn read_secret_is_denied_naming_the_rule() {
    let rule = r#"deny: ["secret_access"]"#;
    let _broker = FakeBroker::builder().deny("secret_get", rule).start();
    let error = agent::read_secret("name").unwrap_err();
    assert_eq!(error.rule(), Some(rule));
}

#[test]
fn send_message_sends_the_payload() {
    let broker = FakeBroker::start();
    assert_eq!(agent::send_message("peer", &serde_json::json!({"n": 1})).unwrap(), 1);
    assert_eq!(broker.sent(), [("peer".to_string(), serde_json::json!({"n": 1}))]);
}

#[test]
fn send_message_is_denied_naming_the_rule() {
    let rule = r#"deny: ["send_message"]"#;
    let _broker = FakeBroker::builder().deny("send_message", rule).start();
    let error = agent::send_message("peer", &serde_json::json!({"n": 1})).unwrap_err();
    assert_eq!(error.rule(), Some(rule));
}

#[test]
fn receive_message_returns_what_came() {
    let _broker = FakeBroker::builder().inbox("peer", serde_json::json!({"n": 1})).start();
    let message = agent::receive_message(100).unwrap().expect("a message");
    assert_eq!(message.from, "peer");
    assert_eq!(message.payload, serde_json::json!({"n": 1}));
}

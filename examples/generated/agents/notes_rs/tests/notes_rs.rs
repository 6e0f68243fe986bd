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
    let rule = r#"deny: ["web_request"]"#;
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

//! {{ name }}'s tests: its code against the SDK's fake broker, without a sandbox.

use symbiont::testing::FakeBroker;

use {{ name }} as agent;
{% for f in functions %}
{% if f.function == "fetch_url" %}

#[test]
fn fetch_url_returns_the_body() {
    let _broker = FakeBroker::builder().http("https://example.com/data", 200, "hello").start();
    assert_eq!(agent::fetch_url("https://example.com/data").unwrap(), "hello");
}
{% elif f.function == "read_file" %}

#[test]
fn read_file_reads_the_workspace() {
    let _broker = FakeBroker::builder().file("notes.txt", "hello").start();
    assert_eq!(agent::read_file("notes.txt").unwrap(), "hello");
}
{% elif f.function == "write_file" %}

#[test]
fn write_file_writes_the_workspace() {
    let broker = FakeBroker::start();
    assert_eq!(agent::write_file("out.txt", "hello").unwrap(), 5);
    assert_eq!(broker.files()["out.txt"], "hello");
}
{% elif f.function == "read_env" %}

#[test]
fn read_env_reads_declared_variables_only() {
    let _broker = FakeBroker::builder().env("REGION", "eu-west-1").start();
    assert_eq!(agent::read_env("REGION").unwrap().as_deref(), Some("eu-west-1"));
    assert_eq!(agent::read_env("HOME").unwrap(), None);
}
{% elif f.function == "read_secret" %}

#[test]
fn read_secret_reads_by_name() {
    let _broker = FakeBroker::builder().secret("api_key", "s3cr3t").start();
    assert_eq!(agent::read_secret("api_key").unwrap().as_deref(), Some("s3cr3t"));
}
{% elif f.function == "send_message" %}

#[test]
fn send_message_sends_the_payload() {
    let broker = FakeBroker::start();
    assert_eq!(agent::send_message("peer", &serde_json::json!({"n": 1})).unwrap(), 1);
    assert_eq!(broker.sent(), [("peer".to_string(), serde_json::json!({"n": 1}))]);
}
{% elif f.function == "receive_message" %}

#[test]
fn receive_message_returns_what_came() {
    let _broker = FakeBroker::builder().inbox("peer", serde_json::json!({"n": 1})).start();
    let message = agent::receive_message(100).unwrap().expect("a message");
    assert_eq!(message.from, "peer");
    assert_eq!(message.payload, serde_json::json!({"n": 1}));
}
{% endif %}
{% if f.broker_op != "receive_message" %}

#[test]
fn {{ f.function }}_is_denied_naming_the_rule() {
    let rule = r#"deny: ["{{ f.operations[0] }}"]"#;
    let _broker = FakeBroker::builder().deny("{{ f.broker_op }}", rule).start();
{% if f.function == "fetch_url" %}
    let error = agent::fetch_url("https://example.com/data").unwrap_err();
    let error = error.downcast_ref::<symbiont::Error>().expect("the SDK's error");
    assert_eq!(error.rule(), Some(rule));
{% else %}
{% if f.function == "write_file" %}
    let error = agent::write_file("out.txt", "hello").unwrap_err();
{% elif f.function == "send_message" %}
    let error = agent::send_message("peer", &serde_json::json!({"n": 1})).unwrap_err();
{% else %}
    let error = agent::{{ f.function }}("name").unwrap_err();
{% endif %}
    assert_eq!(error.rule(), Some(rule));
{% endif %}
}
{% endif %}
{% endfor %}

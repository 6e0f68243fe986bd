//! {{ name }}'s entry point: does what the run's input asks, one key per capability:
//! {% for f in functions %}`{{ f.input }}`{% if not loop.last %}, {% endif %}{% endfor %}{% if not functions %}none{% endif %}.

use {{ name }} as agent;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let task = symbiont::input()?;
    let text = |key: &str| task.get(key).and_then(|v| v.as_str()).map(str::to_string);
{% for f in functions %}
{% if f.function == "fetch_url" %}
    if let Some(url) = text("fetch") {
        println!("fetched {} characters", agent::fetch_url(&url)?.len());
    }
{% elif f.function == "read_file" %}
    if let Some(path) = text("read") {
        println!("{}", agent::read_file(&path)?);
    }
{% elif f.function == "write_file" %}
    if let Some(write) = task.get("write") {
        let field = |key: &str| write.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let written = agent::write_file(field("path"), field("content"))?;
        println!("wrote {written} bytes");
    }
{% elif f.function == "read_env" %}
    if let Some(name) = text("env") {
        println!("{:?}", agent::read_env(&name)?);
    }
{% elif f.function == "read_secret" %}
    if let Some(name) = text("secret") {
        let found = agent::read_secret(&name)?.is_some();
        println!("secret {name}: {}", if found { "set" } else { "not set" });
    }
{% elif f.function == "send_message" %}
    if let Some(send) = task.get("send") {
        let to = send.get("to").and_then(|v| v.as_str()).unwrap_or_default();
        println!("sent message {}", agent::send_message(to, &send["payload"])?);
    }
{% elif f.function == "receive_message" %}
    if let Some(ms) = task.get("receive").and_then(|v| v.as_u64()) {
        println!("{:?}", agent::receive_message(ms)?);
    }
{% endif %}
{% endfor %}
    symbiont::log("info", "{{ name }}: done")?;
    Ok(())
}

//! notes_rs's entry point: does what the run's input asks, one key per capability:
//! `fetch`, `read`, `write`, `env`, `secret`, `send`, `receive`.

use notes_rs as agent;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let task = symbiont::input()?;
    let text = |key: &str| task.get(key).and_then(|v| v.as_str()).map(str::to_string);
    if let Some(url) = text("fetch") {
        println!("fetched {} characters", agent::fetch_url(&url)?.len());
    }
    if let Some(path) = text("read") {
        println!("{}", agent::read_file(&path)?);
    }
    if let Some(write) = task.get("write") {
        let field = |key: &str| write.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let written = agent::write_file(field("path"), field("content"))?;
        println!("wrote {written} bytes");
    }
    if let Some(name) = text("env") {
        println!("{:?}", agent::read_env(&name)?);
    }
    if let Some(name) = text("secret") {
        let found = agent::read_secret(&name)?.is_some();
        println!("secret {name}: {}", if found { "set" } else { "not set" });
    }
    if let Some(send) = task.get("send") {
        let to = send.get("to").and_then(|v| v.as_str()).unwrap_or_default();
        println!("sent message {}", agent::send_message(to, &send["payload"])?);
    }
    if let Some(ms) = task.get("receive").and_then(|v| v.as_u64()) {
        println!("{:?}", agent::receive_message(ms)?);
    }
    symbiont::log("info", "notes_rs: done")?;
    Ok(())
}

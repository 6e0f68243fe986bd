//! notes_rs's entry point: does what the run's input asks, one key per capability:
//! `fetch`, `read`, `write`, `env`.

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
    symbiont::log("info", "notes_rs: done")?;
    Ok(())
}

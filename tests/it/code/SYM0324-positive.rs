// Starting processes from Rust.
use std::process::Command;
use std::process::Command as Cmd;
use tokio::process::Command as AsyncCommand;

fn main() -> std::io::Result<()> {
    let out = Command::new("ls").arg("-l").output()?; // HIT
    let status = Cmd::new("git").args(["status"]).status()?; // HIT
    let child = std::process::Command::new("sleep").arg("1").spawn()?; // HIT
    let run = |c: &str| Command::new(c).status(); // HIT
    drop((out, status, child, run));
    Ok(())
}

async fn build() -> std::io::Result<()> {
    AsyncCommand::new("make").status().await?; // HIT
    tokio::process::Command::new("cargo").arg("build").output().await?; // HIT
    Ok(())
}

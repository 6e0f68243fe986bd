// File reads from Rust.
use std::fs::{read_to_string as slurp, File};
use std::fs;

fn main() -> std::io::Result<()> {
    let text = std::fs::read_to_string("in.txt")?; // HIT
    let bytes = fs::read("in.bin")?; // HIT
    let alias = slurp("in.txt")?; // HIT
    let file = File::open("in.txt")?; // HIT
    for entry in fs::read_dir(".")? { // HIT
        drop(entry?);
    }
    let lines: Vec<String> = fs::read_to_string("in.txt")?.lines().map(String::from).collect(); // HIT
    println!("{}", fs::read_to_string("in.txt")?); // HIT
    drop((text, bytes, alias, file, lines));
    Ok(())
}

async fn load() -> std::io::Result<String> {
    tokio::fs::read_to_string("in.txt").await // HIT
}

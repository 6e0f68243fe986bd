// Environment variables from Rust.
use std::env;
use std::env::{set_var, var_os};

fn main() {
    let token = std::env::var("TOKEN"); // HIT
    let home = env::var("HOME").unwrap_or_default(); // HIT
    let path = var_os("PATH"); // HIT
    for (k, v) in env::vars() { // HIT
        drop((k, v));
    }
    unsafe { set_var("A", "1") }; // HIT
    let port: u16 = env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(80); // HIT
    let url = format!("https://{}", env::var("HOST").unwrap()); // HIT
    drop((token, home, path, port, url));
}

struct Config {
    key: String,
}

impl Config {
    fn load() -> Config {
        Config { key: std::env::var("API_KEY").expect("API_KEY") } // HIT
    }
}

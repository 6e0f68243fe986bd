// Look-alikes of network access in Rust.
use std::collections::HashMap;

mod cache {
    pub fn get(url: &str) -> Option<String> {
        Some(url.to_string())
    }
}

mod my {
    pub mod reqwest {
        pub fn get(url: &str) -> String {
            url.to_string()
        }
    }
}

fn get(key: &str) -> Option<&str> {
    Some(key)
}

fn main() {
    let body = cache::get("https://example.com");
    let local = my::reqwest::get("https://example.com");
    let mut map: HashMap<&str, &str> = HashMap::new();
    map.insert("a", "b");
    let value = map.get("a");
    let own = get("https://example.com");
    // reqwest::get("https://example.com") in a comment
    let doc = "reqwest::get(\"https://example.com\")";
    let addr: std::net::SocketAddr = "127.0.0.1:80".parse().unwrap();
    drop((body, local, value, own, doc, addr));
}

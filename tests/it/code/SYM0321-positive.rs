// Network access from Rust.
use reqwest as http;
use reqwest::blocking::Client;
use std::net::{TcpStream, UdpSocket};
use tokio::net::TcpListener;

async fn fetch(url: &str) -> Result<String, reqwest::Error> {
    let body = reqwest::get(url).await?.text().await?; // HIT
    let again = http::get(url).await?; // HIT
    let client = reqwest::Client::builder().build()?; // HIT
    Ok(body + &again.text().await? + &format!("{client:?}"))
}

fn blocking() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::new(); // HIT
    let text = reqwest::blocking::get("https://example.com")?.text()?; // HIT
    let resp = ureq::get("https://example.com").call()?; // HIT
    let agent = ureq::Agent::new_with_defaults(); // HIT
    let stream = TcpStream::connect("example.com:80")?; // HIT
    let timeout = TcpStream::connect_timeout(&"1.1.1.1:53".parse()?, std::time::Duration::from_secs(1))?; // HIT
    let udp = UdpSocket::bind("0.0.0.0:0")?; // HIT
    let std_path = std::net::TcpStream::connect(("example.com", 443))?; // HIT
    drop((client, text, resp, agent, stream, timeout, udp, std_path));
    Ok(())
}

struct Service {
    client: reqwest::Client,
}

impl Service {
    fn new() -> Self {
        Service { client: reqwest::Client::new() } // HIT
    }

    async fn serve(&self) -> std::io::Result<()> {
        let listener = TcpListener::bind("0.0.0.0:8080").await?; // HIT
        let handle = tokio::spawn(async move { reqwest::get("https://example.com").await }); // HIT
        let get = |u: &str| ureq::post(u); // HIT
        drop((listener, handle, get, &self.client));
        Ok(())
    }
}

fn in_macros() {
    println!("{:?}", reqwest::blocking::get("https://example.com")); // HIT
    let both = tokio::join!(reqwest::get("https://a.example"), http::get("https://b.example")); // HIT HIT
    drop(both);
}

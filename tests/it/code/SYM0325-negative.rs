// Look-alikes of environment access.
mod config {
    pub fn var(name: &str) -> Option<String> {
        Some(name.to_string())
    }
}

fn main() {
    let token = config::var("TOKEN");
    let args: Vec<String> = std::env::args().collect();
    let dir = std::env::current_dir();
    let built = env!("CARGO_PKG_NAME");
    let optional = option_env!("CI");
    // std::env::var("TOKEN")
    let doc = "env::var(\"TOKEN\")";
    drop((token, args, dir, built, optional, doc));
}

// File writes, deletions and renames from Rust.
use std::fs::{self, File, OpenOptions};
use std::fs::write;
use std::io::Write;
use tokio::fs as afs;

fn main() -> std::io::Result<()> {
    std::fs::write("out.txt", b"x")?; // HIT
    write("out.txt", "x")?; // HIT
    fs::remove_file("old.txt")?; // HIT
    fs::create_dir_all("a/b")?; // HIT
    fs::rename("a", "b")?; // HIT
    let mut file = File::create("out.log")?; // HIT
    file.write_all(b"x")?;
    let created = File::create_new("new.txt")?; // HIT
    let log = OpenOptions::new().append(true).open("log.txt")?; // HIT
    let rw = std::fs::OpenOptions::new().read(true).write(true).open("db")?; // HIT
    let both = OpenOptions::new().create(true).write(true).open("x")?; // HIT
    let cleanup = || fs::remove_dir_all("tmp"); // HIT
    cleanup()?;
    drop((created, log, rw, both));
    Ok(())
}

async fn save(data: &[u8]) -> std::io::Result<()> {
    afs::write("out.bin", data).await?; // HIT
    tokio::fs::create_dir("cache").await?; // HIT
    Ok(())
}

struct Exporter;

impl Exporter {
    fn export(&self) -> std::io::Result<()> {
        std::fs::copy("a", "b").map(|_| ()) // HIT
    }

    // A method named `write` does not hide `std::fs::write` imported above.
    fn write(&self) {}
}

fn in_macros() {
    assert!(fs::write("out.txt", "x").is_ok()); // HIT
}

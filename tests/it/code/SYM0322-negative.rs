// Reads and look-alikes: nothing here writes a file.
use std::fmt::Write as _;
use std::fs;
use std::io::Write;

fn write(name: &str) -> String {
    name.to_string()
}

fn main() -> std::io::Result<()> {
    let data = fs::read("in.txt")?;
    let meta = fs::metadata("in.txt")?;
    let ro = fs::OpenOptions::new().read(true).open("in.txt")?;
    let mut out = String::new();
    write!(out, "{}", data.len()).unwrap();
    std::io::stdout().write_all(b"x")?;
    let local = write("out.txt");
    // std::fs::write("out.txt", b"x")
    let doc = "fs::remove_file(\"old.txt\")";
    drop((meta, ro, local, doc));
    Ok(())
}

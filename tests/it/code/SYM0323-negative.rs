// Look-alikes of file reads.
use std::io::Read;

mod store {
    pub fn read(key: &str) -> Vec<u8> {
        key.as_bytes().to_vec()
    }
}

fn main() {
    let text = String::from("in.txt");
    let bytes = store::read("in.txt");
    let mut buf = String::new();
    std::io::stdin().read_to_string(&mut buf).unwrap();
    // std::fs::read_to_string("in.txt")
    let doc = "fs::read(\"in.txt\")";
    std::fs::write("out.txt", "x").unwrap();
    drop((text, bytes, doc));
}

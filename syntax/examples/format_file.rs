fn main() {
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap();
        match symbiont_syntax::format::format(&text) {
            Ok(out) => print!("{out}"),
            Err(e) => eprintln!("{path}: {e}"),
        }
    }
}

fn main() {
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap();
        let parse = symbiont_syntax::parse(&text);
        assert_eq!(parse.syntax().text().to_string(), text);
        for e in parse.errors() {
            let line = text[..usize::from(e.range.start())].matches('\n').count() + 1;
            println!("{path}:{line}: {} {:?}", e.message, e.range);
        }
        if std::env::var("TREE").is_ok() {
            print!("{}", parse.debug_tree());
        }
    }
}

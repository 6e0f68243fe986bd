fn main() {
    let rules = symbiont_code::RuleSet::default();
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap();
        let lang = symbiont_code::Lang::from_path(path.as_ref()).unwrap();
        if std::env::var("SITES").is_ok() {
            let tree = symbiont_code::scan::parse(lang, &text).unwrap();
            for s in symbiont_code::sites::sites(lang, &tree, &text) {
                println!("site {:?} {}", s.kind, s.qualified);
            }
        }
        for f in rules.scan(lang, &text).findings {
            println!("{path}:{}: {} {} {:?}", f.start, f.rule, f.operation, f.qualified);
        }
    }
}

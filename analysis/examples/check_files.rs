fn main() {
    let mut host = symbiont_analysis::AnalysisHost::new();
    for path in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&path).unwrap();
        host.set_file(path, text);
    }
    for (path, diags) in host.all_diagnostics() {
        for d in diags {
            println!("{}:{:?}: {} {} {}", path.display(), d.range, d.severity, d.code(), d.message);
        }
    }
}

//! Matching paths against `implementation` globs: `*` and `?` within one path segment, `**` across
//! any number of segments. Paths are compared segment by segment with `/` separators.

/// Whether `path` matches `pattern`; both are `/`-separated and already relative to the same base.
pub fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    segments(&pattern, &path)
}

fn segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| segments(rest, &path[skip..])),
        Some((first, rest)) => {
            path.split_first().is_some_and(|(p, path_rest)| segment(first.as_bytes(), p.as_bytes()) && segments(rest, path_rest))
        }
    }
}

fn segment(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| segment(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && segment(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && segment(rest, &text[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches("reviewer.py", "reviewer.py"));
        assert!(matches("./src/*.ts", "src/a.ts"));
        assert!(!matches("src/*.ts", "src/x/a.ts"));
        assert!(matches("src/**/*.ts", "src/x/y/a.ts"));
        assert!(matches("src/**/*.ts", "src/a.ts"));
        assert!(matches("**", "a/b"));
        assert!(!matches("*.py", "a.rs"));
    }
}

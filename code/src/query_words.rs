//! The words a tree-sitter query needs in a file's text before it can match anything there: a
//! capture that every match of a pattern has, compared with `#eq?` to a string, is that string, so
//! a file without it cannot match the pattern. A query whose every pattern needs a word absent
//! from the file is not run on it, and a file no rule can match is not even parsed.
//!
//! The query's text is read conservatively: anything not understood makes the query need nothing
//! (it then runs on every file, as without this).

/// What one top-level pattern of a query needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// Every match contains each of these words: a file must contain them all.
    pub words: Vec<String>,
    /// The kind of the named node every match of the pattern starts at (it contains the words),
    /// when the pattern is one node pattern (`(call …)`, not `(_)`, an alternation or siblings).
    pub root: Option<String>,
}

/// What each pattern of `source` needs, one entry per top-level pattern (a file must contain
/// every word of at least one), or `None` when some pattern needs no word (or the query is
/// written in a way this does not follow).
pub fn required_words(source: &str) -> Option<Vec<Needs>> {
    let items = parse(source)?;
    let mut patterns = Vec::new();
    for item in &items {
        match item {
            Item::List { items: inner, .. } if is_predicate(inner) => return None,
            Item::List { .. } => {
                let mut certain = Vec::new();
                certain_captures(item, true, &mut certain);
                let mut words = Vec::new();
                eq_words(item, &certain, &mut words);
                if words.is_empty() {
                    return None;
                }
                patterns.push(Needs { words, root: root_kind(item) });
            }
            // A capture of a whole pattern adds nothing to what it needs.
            Item::Capture(_) if !patterns.is_empty() => {}
            _ => return None,
        }
    }
    (!patterns.is_empty()).then_some(patterns)
}

/// Whether `text` may hold a match of a query with these requirements.
pub fn may_match(required: &[Needs], text: &str) -> bool {
    required.iter().any(|needs| needs.words.iter().all(|w| text.contains(w.as_str())))
}

/// The node kind a pattern's matches start at: `(call …)`, or the one node pattern of a group
/// (`((call …) @match (#eq? …))`). Not for anything that may be absent, a wildcard, an
/// alternation, a sequence of siblings, or a supertype written `supertype/subtype`.
fn root_kind(item: &Item) -> Option<String> {
    let Item::List { open: b'(', items, optional: false } = item else { return None };
    match items.first()? {
        Item::Word { name, optional: false } => {
            let plain = name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') && !name.starts_with('_');
            plain.then(|| name.clone())
        }
        Item::List { .. } => {
            let mut nodes = items.iter().filter(|i| match i {
                Item::List { items, .. } => !is_predicate(items),
                Item::Word { .. } | Item::Str(_) => true,
                Item::Capture(_) | Item::Predicate(_) => false,
            });
            match (nodes.next(), nodes.next()) {
                (Some(only), None) => root_kind(only),
                _ => None,
            }
        }
        _ => None,
    }
}

#[derive(Debug)]
enum Item {
    /// `( … )` or `[ … ]`, and whether a `?` or `*` makes it optional.
    List {
        open: u8,
        items: Vec<Item>,
        optional: bool,
    },
    Capture(String),
    Str(String),
    /// A predicate's name, `eq?` for `#eq?`.
    Predicate(String),
    /// A node name, field name, `_`, anchor or anything else.
    Word {
        name: String,
        optional: bool,
    },
}

fn is_predicate(items: &[Item]) -> bool {
    matches!(items.first(), Some(Item::Predicate(_)))
}

/// The captures present in every match: not under an alternation, nor under (or on) an item
/// quantified by `?` or `*`.
fn certain_captures(item: &Item, certain: bool, out: &mut Vec<String>) {
    let Item::List { open, items, optional } = item else { return };
    if is_predicate(items) {
        return;
    }
    // Inside an alternation, or a list that may be absent, nothing is certain.
    let certain = certain && *open == b'(' && !optional;
    // Whether the item a capture names (the one before it) may be absent.
    let mut previous_optional = true;
    for item in items {
        match item {
            Item::Capture(name) => {
                if certain && !previous_optional {
                    out.push(name.clone());
                }
            }
            Item::List { optional, .. } => {
                previous_optional = *optional;
                certain_captures(item, certain, out);
            }
            Item::Word { optional, .. } => previous_optional = *optional,
            Item::Str(_) | Item::Predicate(_) => previous_optional = false,
        }
    }
}

/// The strings of the `#eq? @capture "string"` predicates on certain captures.
fn eq_words(item: &Item, certain: &[String], out: &mut Vec<String>) {
    let Item::List { items, .. } = item else { return };
    if is_predicate(items) {
        if let [Item::Predicate(op), Item::Capture(capture), Item::Str(word)] = items.as_slice() {
            if op == "eq?" && !word.is_empty() && certain.contains(capture) && !out.contains(word) {
                out.push(word.clone());
            }
        }
        return;
    }
    for item in items {
        eq_words(item, certain, out);
    }
}

/// The query as nested lists.
fn parse(source: &str) -> Option<Vec<Item>> {
    let bytes = source.as_bytes();
    let mut stack: Vec<(u8, Vec<Item>)> = vec![(0, Vec::new())];
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | b':' | b'!' | b'.' => i += 1,
            b';' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' => {
                stack.push((c, Vec::new()));
                i += 1;
            }
            b')' | b']' => {
                let (open, items) = stack.pop()?;
                if (open, c) != (b'(', b')') && (open, c) != (b'[', b']') {
                    return None;
                }
                stack.last_mut()?.1.push(Item::List { open, items, optional: false });
                i += 1;
            }
            b'?' | b'*' | b'+' => {
                match stack.last_mut()?.1.last_mut()? {
                    Item::List { optional, .. } | Item::Word { optional, .. } => *optional |= c != b'+',
                    _ => return None,
                }
                i += 1;
            }
            b'"' => {
                let mut value = String::new();
                i += 1;
                loop {
                    let (ch, len) = next_char(source, i)?;
                    i += len;
                    match ch {
                        '"' => break,
                        '\\' => {
                            let (escaped, len) = next_char(source, i)?;
                            i += len;
                            value.push(match escaped {
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                '0' => '\0',
                                other => other,
                            });
                        }
                        other => value.push(other),
                    }
                }
                stack.last_mut()?.1.push(Item::Str(value));
            }
            b'@' | b'#' => {
                let start = i;
                i += 1;
                // Predicate names end in `?` or `!`.
                while i < bytes.len() && (is_word(bytes[i]) || c == b'#' && matches!(bytes[i], b'?' | b'!')) {
                    i += 1;
                }
                let word = source[start + 1..i].to_string();
                stack.last_mut()?.1.push(if c == b'@' { Item::Capture(word) } else { Item::Predicate(word) });
            }
            _ if is_word(c) => {
                let start = i;
                while i < bytes.len() && is_word(bytes[i]) {
                    i += 1;
                }
                stack.last_mut()?.1.push(Item::Word { name: source[start..i].to_string(), optional: false });
            }
            _ => return None,
        }
    }
    let (_, items) = stack.pop()?;
    stack.is_empty().then_some(items)
}

fn next_char(source: &str, at: usize) -> Option<(char, usize)> {
    let ch = source.get(at..)?.chars().next()?;
    Some((ch, ch.len_utf8()))
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'/') || c >= 0x80
}

#[cfg(test)]
mod tests {
    use super::required_words;

    fn words(query: &str) -> Option<Vec<Vec<&'static str>>> {
        required_words(query).map(|p| p.into_iter().map(|n| n.words.into_iter().map(|s| &*s.leak()).collect()).collect())
    }

    fn roots(query: &str) -> Vec<Option<String>> {
        required_words(query).unwrap().into_iter().map(|n| n.root).collect()
    }

    #[test]
    fn root_kinds() {
        let q = r#"((call function: (identifier) @f) @match (#eq? @f "x"))
                   (call_expression function: (identifier) @f (#eq? @f "y"))
                   ((_ (identifier) @f) (#eq? @f "z"))
                   ([(call) (identifier)] @f (#eq? @f "z"))
                   ((call (identifier) @f) (call) (#eq? @f "z"))
                   ((expression/identifier) @f (#eq? @f "z"))"#;
        assert_eq!(roots(q), [Some("call".to_string()), Some("call_expression".to_string()), None, None, None, None]);
    }

    #[test]
    fn eq_strings_of_certain_captures() {
        let q = r#"((call function: (attribute object: (identifier) @object attribute: (identifier) @method)
                     arguments: (argument_list)) @match
                   (#eq? @object "requests") (#eq? @method "get"))"#;
        assert_eq!(words(q), Some(vec![vec!["requests", "get"]]));
        // One list per pattern; comments and escapes.
        let q = r#"; fs::write
                   ((call_expression function: (scoped_identifier path: (identifier) @fs name: (identifier) @w)) @match
                    (#eq? @fs "fs") (#eq? @w "write"))
                   ((call_expression function: (identifier) @f) (#eq? @f "a\"b\\c"))"#;
        assert_eq!(words(q), Some(vec![vec!["fs", "write"], vec!["a\"b\\c"]]));
    }

    #[test]
    fn nothing_required_when_a_pattern_may_match_anything() {
        // A pattern without predicates.
        assert_eq!(words(r#"((identifier) @a (#eq? @a "x")) (call) @c"#), None);
        // Optional or alternative captures may be absent, and then the predicate holds.
        assert_eq!(words(r#"((call (identifier)? @a) (#eq? @a "x"))"#), None);
        assert_eq!(words(r#"((call (identifier) @a)* (#eq? @a "x"))"#), None);
        assert_eq!(words(r#"((call [(identifier) @a (string)]) (#eq? @a "x"))"#), None);
        assert_eq!(words(r#"((call ((identifier) @a)?) (#eq? @a "x"))"#), None);
        // Other predicates say nothing about the text.
        assert_eq!(words(r#"((identifier) @a (#not-eq? @a "x"))"#), None);
        assert_eq!(words(r#"((identifier) @a (#any-eq? @a "x"))"#), None);
        assert_eq!(words(r#"((identifier) @a (#match? @a "^x$"))"#), None);
        assert_eq!(words(r#"((identifier) @a (identifier) @b (#eq? @a @b))"#), None);
        // A predicate at the top level, or text this does not read.
        assert_eq!(words(r#"(identifier) @a (#eq? @a "x")"#), None);
        assert_eq!(words(r#"((identifier) @a (#eq? @a "x")"#), None);
        assert_eq!(words(""), None);
    }

    #[test]
    fn one_plus_quantified_captures_are_certain() {
        assert_eq!(words(r#"((call (identifier)+ @a) (#eq? @a "x"))"#), Some(vec![vec!["x"]]));
        assert_eq!(words(r#"((call (identifier) @a (string)?) (#eq? @a "x"))"#), Some(vec![vec!["x"]]));
    }
}

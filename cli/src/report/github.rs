//! GitHub Actions workflow commands, one line per diagnostic, which the Actions runner turns
//! into annotations on the pull request:
//!
//! ```text
//! ::error file=a.sym,line=3,col=7,endLine=3,endColumn=8,title=SYM0101::agent `a` is defined more than once
//! ```
//!
//! Related locations and the fix's title follow the message on lines of their own (encoded as
//! `%0A`, as GitHub requires).

use symbiont_analysis::Severity;

use super::Report;

fn command(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info | Severity::Hint => "notice",
    }
}

/// Escapes a command's message.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a property value: as data, and also `:` and `,` that would end it.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for item in &report.diagnostics {
        let location = &item.location;
        let mut message = item.message.clone();
        for related in &item.related {
            let l = &related.location;
            message.push_str(&format!("\nnote: {}:{}:{}: {}", l.path.display, l.start.line, l.start.column, related.message));
        }
        if let Some(fix) = &item.fix {
            message.push_str(&format!("\nhelp: {}", fix.title));
        }
        out.push_str(&format!(
            "::{} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
            command(item.severity),
            escape_property(&location.path.display),
            location.start.line,
            location.start.column,
            location.end.line,
            location.end.column,
            escape_property(item.rule.code),
            escape_data(&message),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_data("50% a:b,c\r\nd"), "50%25 a:b,c%0D%0Ad");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
    }
}

//! Names the runtime hands to guards and looks up: a secret's name has one canonical form, so that
//! a guard and the lookup always see the same name; an environment variable's name is checked
//! where `symbiont.toml` declares it (`[runtime]`, `docs/runtime.md`).

/// The longest secret name, in bytes.
pub const MAX_SECRET_NAME: usize = 128;

/// The prefix of every variable the runtime itself reads (`SYMBIONT_SECRET_*` holds secrets):
/// never part of an agent's environment.
pub const RESERVED_ENV_PREFIX: &str = "SYMBIONT_";

/// Whether `text` uses only what a canonical secret name may: `a`–`z`, `0`–`9` and `_`.
pub fn secret_name_chars(text: &str) -> bool {
    text.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
}

/// The canonical form of a requested secret name: ASCII letters lowercased, then 1 to
/// [`MAX_SECRET_NAME`] bytes of `a`–`z`, `0`–`9` and `_`, or an error saying why not. Guards
/// decide on this form and the runtime looks up exactly this name (`SYMBIONT_SECRET_` and its
/// uppercase), so `DB_PASSWORD`, `Db_Password` and `db_password` are one secret to both.
pub fn secret_name(requested: &str) -> Result<String, String> {
    let canonical = requested.to_ascii_lowercase();
    if canonical.is_empty() || canonical.len() > MAX_SECRET_NAME || !secret_name_chars(&canonical) {
        return Err(format!(
            "a secret's name is 1 to {MAX_SECRET_NAME} letters, digits and `_` (any case; it is read in lowercase), not {}",
            quoted(requested)
        ));
    }
    Ok(canonical)
}

/// Whether `literal` is a host as the broker hands it to guards (`docs/broker-protocol.md`, "HTTP
/// destinations"): an IPv4 address as a dotted quad; an IPv6 address compressed, in lowercase,
/// without brackets, and not IPv4-mapped (that one is its IPv4 address); else a name in lowercase
/// ASCII (IDNA applied) without a trailing dot or percent-encoding. A literal that looks like a
/// number in its last label is an IPv4 address to a URL parser (`127.1`, `0x7f000001`), so it is
/// canonical only as a dotted quad.
pub fn host_is_canonical(literal: &str) -> bool {
    if let Ok(v6) = literal.parse::<std::net::Ipv6Addr>() {
        return v6.to_ipv4_mapped().is_none() && v6.to_string() == literal;
    }
    let last = literal.rsplit('.').next().unwrap_or(literal);
    let numeric = !last.is_empty()
        && (last.bytes().all(|b| b.is_ascii_digit())
            || (last.len() > 1 && last[..2].eq_ignore_ascii_case("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit())));
    if numeric {
        return literal.parse::<std::net::Ipv4Addr>().is_ok_and(|v4| v4.to_string() == literal);
    }
    !literal.is_empty() && !literal.ends_with('.') && host_part_is_canonical(literal)
}

/// Whether `part` can be part of a canonical host: lowercase ASCII, without brackets,
/// percent-encoding, spaces or a port.
pub fn host_part_is_canonical(part: &str) -> bool {
    part.bytes().all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase() && !matches!(b, b'%' | b'[' | b']' | b'/' | b'@'))
}

/// Why `name` cannot be a variable of an agent's environment, if it cannot: it must be a portable
/// variable name (`[A-Za-z_][A-Za-z0-9_]*`) outside the runtime's own `SYMBIONT_` prefix.
pub fn env_name_error(name: &str) -> Option<String> {
    let mut bytes = name.bytes();
    let portable =
        bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_') && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !portable {
        return Some(format!("{} is not a variable name (letters, digits and `_`, not starting with a digit)", quoted(name)));
    }
    if name.to_ascii_uppercase().starts_with(RESERVED_ENV_PREFIX) {
        return Some(format!("`{name}`: names starting with `{RESERVED_ENV_PREFIX}` are the runtime's own (its secrets among them)"));
    }
    None
}

/// Words that make a variable's name a secret's: a host variable so named is never passed to an
/// agent (secrets go through `secret_get`, decided by `secret_access`).
const SECRET_WORDS: &[&str] =
    &["SECRET", "PASSWORD", "PASSWD", "TOKEN", "API_KEY", "APIKEY", "PRIVATE_KEY", "CREDENTIAL", "COOKIE", "AUTH", "SESSION"];

/// Whether a variable's name says it holds a secret: it contains one of the words above, or ends
/// in `KEY` or `PWD` (as `AWS_SECRET_ACCESS_KEY`, `STRIPE_KEY`, `MYSQL_PWD`); `PWD` itself is the
/// working directory.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w)) || upper.ends_with("KEY") || (upper.ends_with("PWD") && upper != "PWD")
}

/// A name as the user wrote it, quoted, with control characters escaped and long ones cut.
fn quoted(name: &str) -> String {
    let shown: String = name.chars().take(64).collect();
    let more = if shown.len() < name.len() { "…" } else { "" };
    format!("{:?}{more}", shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_have_one_canonical_form() {
        for spelling in ["DB_PASSWORD", "Db_Password", "db_password"] {
            assert_eq!(secret_name(spelling).as_deref(), Ok("db_password"));
        }
        assert_eq!(secret_name("api_key_2").as_deref(), Ok("api_key_2"));
        assert_eq!(secret_name(&"a".repeat(MAX_SECRET_NAME)).map(|n| n.len()), Ok(MAX_SECRET_NAME));
        // Anything else is refused, never mapped: no two spellings can reach different variables.
        for bad in
            ["", "db-password", "db password", "../x", "x/y", "a\0b", "DB_PAſSWORD", "İD", "name=x", &"a".repeat(MAX_SECRET_NAME + 1)]
        {
            let err = secret_name(bad).unwrap_err();
            assert!(err.contains("letters, digits and `_`"), "{bad:?}: {err}");
        }
        assert!(secret_name("a\nb").unwrap_err().contains("\"a\\nb\""), "control characters are escaped in messages");
        assert!(secret_name_chars("db_") && secret_name_chars("") && !secret_name_chars("DB") && !secret_name_chars("a-b"));
    }

    #[test]
    fn canonical_hosts() {
        for canonical in ["localhost", "api.example.com", "xn--bcher-kva.example", "127.0.0.1", "0.0.0.0", "::1", "::", "2001:db8::1"] {
            assert!(host_is_canonical(canonical), "{canonical}");
        }
        for other in [
            "LOCALHOST",
            "localhost.",
            "Api.example.com",
            "bücher.example",
            "127.1",
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "127.0.0.1.",
            "[::1]",
            "::ffff:127.0.0.1",
            "0:0:0:0:0:0:0:1",
            "2001:DB8::1",
            "%6c%6f%63alhost",
            "",
        ] {
            assert!(!host_is_canonical(other), "{other}");
        }
        assert!(host_part_is_canonical(".example.com") && host_part_is_canonical("127.") && !host_part_is_canonical(".EXAMPLE.com"));
    }

    #[test]
    fn environment_names() {
        assert_eq!(env_name_error("TZ"), None);
        assert_eq!(env_name_error("_private_1"), None);
        for bad in ["", "1X", "A-B", "A B", "A=B", "É"] {
            assert!(env_name_error(bad).unwrap().contains("not a variable name"), "{bad:?}");
        }
        for reserved in ["SYMBIONT_SECRET_DB", "symbiont_broker", "SYMBIONT_"] {
            assert!(env_name_error(reserved).unwrap().contains("the runtime's own"), "{reserved:?}");
        }
    }

    #[test]
    fn secret_looking_names() {
        for secret in [
            "AWS_SECRET_ACCESS_KEY",
            "GITHUB_TOKEN",
            "PGPASSWORD",
            "OPENAI_API_KEY",
            "STRIPE_KEY",
            "MYSQL_PWD",
            "SSH_AUTH_SOCK",
            "db_credentials",
        ] {
            assert!(looks_secret(secret), "{secret}");
        }
        for plain in ["TZ", "LANG", "HOME", "PATH", "PWD", "LC_ALL", "REGION"] {
            assert!(!looks_secret(plain), "{plain}");
        }
    }
}

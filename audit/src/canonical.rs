//! RFC 8785 JSON Canonicalization Scheme: one byte string per JSON value, so that a signature
//! over it means the same thing to every verifier.

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCanonicalizable(pub String);

/// The canonical serialization of `value`: object keys sorted by their UTF-16 code units, no
/// whitespace, strings with the minimal escapes, numbers as ECMAScript prints them.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, NotCanonicalizable> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), NotCanonicalizable> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let f = n.as_f64().ok_or_else(|| NotCanonicalizable(format!("the number {n} is not an IEEE double")))?;
            // Integers beyond 2^53 have no exact double: JCS would silently change them.
            let magnitude = n.as_u64().or_else(|| n.as_i64().map(i64::unsigned_abs));
            if magnitude.is_some_and(|m| m > 1 << 53) {
                return Err(NotCanonicalizable(format!("the integer {n} is beyond 2^53 and cannot be represented exactly")));
            }
            write_number(f, out)?;
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, out)?,
    }
    Ok(())
}

/// The canonical serialization of a JSON object, appended to `out`.
pub fn write_object(map: &serde_json::Map<String, Value>, out: &mut Vec<u8>) -> Result<(), NotCanonicalizable> {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    // UTF-16 order is byte order for ASCII keys, the common case.
    entries.sort_by(|a, b| {
        if a.0.is_ascii() && b.0.is_ascii() {
            a.0.as_bytes().cmp(b.0.as_bytes())
        } else {
            a.0.encode_utf16().cmp(b.0.encode_utf16())
        }
    });
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write(value, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// The canonical serialization of a non-negative integer, appended to `out`: what [`write`] gives
/// for it as a JSON number (decimal digits; beyond 2^53 it has no canonical form).
pub fn write_u64(n: u64, out: &mut Vec<u8>) -> Result<(), NotCanonicalizable> {
    if n > 1 << 53 {
        return Err(NotCanonicalizable(format!("the integer {n} is beyond 2^53 and cannot be represented exactly")));
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    Ok(())
}

/// A JSON string with the minimal escapes, appended to `out`. Runs of bytes that need no escape
/// (everything but `"`, `\` and controls; every byte of a multi-byte UTF-8 sequence is >= 0x80)
/// are copied whole.
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..0x20 => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.extend_from_slice(escape);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// ECMAScript's `Number.prototype.toString` for finite doubles (ECMA-262 §6.1.6.1.20).
fn write_number(f: f64, out: &mut Vec<u8>) -> Result<(), NotCanonicalizable> {
    if !f.is_finite() {
        return Err(NotCanonicalizable(format!("{f} is not a JSON number")));
    }
    if f == 0.0 {
        out.push(b'0');
        return Ok(());
    }
    if f < 0.0 {
        out.push(b'-');
    }
    // Rust prints the shortest digits that round-trip, as ECMAScript requires.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exponent.parse::<i32>().expect("a decimal exponent") + 1;
    let text = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let exp = (n - 1).abs();
        if k == 1 {
            format!("{digits}e{sign}{exp}")
        } else {
            format!("{}.{}e{sign}{exp}", &digits[..1], &digits[1..])
        }
    };
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn canon(v: Value) -> String {
        String::from_utf8(to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn numbers_print_as_ecmascript_does() {
        // Values from RFC 8785 Appendix B.
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (333_333_333.333_333_3, "333333333.3333333"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (-1.5, "-1.5"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (295147905179352830000.0, "295147905179352830000"),
            (9007199254740992.0, "9007199254740992"),
            (0.1, "0.1"),
            (123.456e-10, "1.23456e-8"),
        ];
        for (value, expected) in cases {
            let mut out = Vec::new();
            write_number(value, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{value:e}");
        }
    }

    #[test]
    fn objects_sort_by_utf16_and_strings_escape_minimally() {
        assert_eq!(
            canon(json!({"b": 1, "a": [true, null, "x"], "é": "\u{1}\n\"", "€": 1, "\u{1F600}": 2})),
            "{\"a\":[true,null,\"x\"],\"b\":1,\"é\":\"\\u0001\\n\\\"\",\"€\":1,\"\u{1F600}\":2}"
        );
        assert!(to_vec(&json!(u64::MAX)).is_err());
    }
}

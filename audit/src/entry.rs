//! Audit entries and checkpoints: their JSON form, what is signed (a DSSE-style pre-authentication
//! encoding of the canonical JSON, with a type per kind of record, so a signature over one kind can
//! never be replayed as another), and how they chain.

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{canonical, merkle::Hash, Error};

pub const ENTRY_TYPE: &str = "application/vnd.symbiont.audit.entry.v1+json";
pub const CHECKPOINT_TYPE: &str = "application/vnd.symbiont.audit.checkpoint.v1";
pub const ROTATION_TYPE: &str = "application/vnd.symbiont.audit.key-rotation.v1+json";
pub const FORMAT_VERSION: u32 = 1;
/// The operation of an entry that hands signing over to a new key.
pub const ROTATION_OPERATION: &str = "key_rotation";

/// DSSE's pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(body)> <body>`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub fn unhex32(text: &str) -> Option<Hash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn unb64<const N: usize>(text: &str) -> Option<[u8; N]> {
    B64.decode(text).ok()?.try_into().ok()
}

/// The `prev` of the first entry.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller asks to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub agent: String,
    pub operation: String,
    pub decision: String,
    pub details: Map<String, Value>,
}

impl Record {
    /// From a JSON object with `agent`, `operation` and `decision`; every other field goes into
    /// the details.
    pub fn from_json(value: Value) -> Result<Record, Error> {
        let Value::Object(mut map) = value else { return Err(Error::Input("a record must be a JSON object".into())) };
        let mut take = |key: &str| match map.remove(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(_) => Err(Error::Input(format!("`{key}` must be a non-empty string"))),
            None => Err(Error::Input(format!("the record has no `{key}`"))),
        };
        let (agent, operation, decision) = (take("agent")?, take("operation")?, take("decision")?);
        let details = match map.remove("details") {
            Some(Value::Object(details)) if map.is_empty() => details,
            Some(other) => {
                map.insert("details".into(), other);
                map
            }
            None => map,
        };
        Ok(Record { agent, operation, decision, details })
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub v: u32,
    /// The log's origin: an entry spliced in from another log names another origin.
    pub log: String,
    pub seq: u64,
    pub ts: String,
    pub agent: String,
    pub operation: String,
    pub decision: String,
    pub details: Map<String, Value>,
    pub key_id: String,
    /// Hex SHA-256 of the previous entry's signed body.
    pub prev: String,
    /// Base64 Ed25519 signature by `key_id` over `pae(ENTRY_TYPE, body)`.
    pub sig: String,
    /// Key rotation only: the new key's signature over `pae(ROTATION_TYPE, body)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cosig: Option<String>,
}

/// An entry's canonical body, and where its signatures go to make its canonical line.
///
/// The canonical JSON of an entry sorts its keys: `agent, cosig, decision, details, key_id, log,
/// operation, prev, seq, sig, ts, v`. The body is the same object without `sig` and `cosig`, so
/// the line is the body with `,"cosig":…` spliced in before `,"decision"` and `,"sig":…` before
/// `,"ts"`; the body is written once and the line costs a copy.
#[derive(Debug, Clone)]
pub struct Body {
    bytes: Vec<u8>,
    /// Where `,"decision"` starts.
    cosig_at: usize,
    /// Where `,"ts"` starts.
    sig_at: usize,
}

impl Body {
    /// What is signed and chained.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The canonical line of the entry with these signatures.
    pub fn line(&self, sig: &str, cosig: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + sig.len() + cosig.map_or(0, |c| c.len() + 12) + 12);
        out.extend_from_slice(&self.bytes[..self.cosig_at]);
        if let Some(cosig) = cosig {
            out.extend_from_slice(b",\"cosig\":");
            canonical::write_string(cosig, &mut out);
        }
        out.extend_from_slice(&self.bytes[self.cosig_at..self.sig_at]);
        out.extend_from_slice(b",\"sig\":");
        canonical::write_string(sig, &mut out);
        out.extend_from_slice(&self.bytes[self.sig_at..]);
        out
    }
}

impl Entry {
    /// The canonical body, written directly (the same bytes as the canonical JSON of the entry's
    /// serde form without `sig` and `cosig`).
    pub fn canonical_body(&self) -> Result<Body, Error> {
        let mut details = Vec::with_capacity(2 + 64 * self.details.len());
        canonical::write_object(&self.details, &mut details).map_err(|e| Error::Input(e.0))?;
        self.canonical_body_with(&details)
    }

    /// [`Entry::canonical_body`] with the details already written (what
    /// [`canonical::write_object`] gives for `self.details`; they are not looked at): the writer
    /// serializes them before it takes the chain's lock.
    pub fn canonical_body_with(&self, details: &[u8]) -> Result<Body, Error> {
        let mut out = Vec::with_capacity(256 + self.log.len() + self.agent.len() + self.operation.len() + details.len());
        let input = |e: canonical::NotCanonicalizable| Error::Input(e.0);
        let field = |out: &mut Vec<u8>, name: &str, value: &str| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            canonical::write_string(value, out);
        };
        out.extend_from_slice(b"{\"agent\":");
        canonical::write_string(&self.agent, &mut out);
        let cosig_at = out.len();
        field(&mut out, "decision", &self.decision);
        out.extend_from_slice(b",\"details\":");
        out.extend_from_slice(details);
        field(&mut out, "key_id", &self.key_id);
        field(&mut out, "log", &self.log);
        field(&mut out, "operation", &self.operation);
        field(&mut out, "prev", &self.prev);
        out.extend_from_slice(b",\"seq\":");
        canonical::write_u64(self.seq, &mut out).map_err(input)?;
        let sig_at = out.len();
        field(&mut out, "ts", &self.ts);
        out.extend_from_slice(b",\"v\":");
        canonical::write_u64(u64::from(self.v), &mut out).map_err(input)?;
        out.push(b'}');
        Ok(Body { bytes: out, cosig_at, sig_at })
    }

    /// The canonical JSON of everything but the signatures: what is signed and chained.
    pub fn body(&self) -> Result<Vec<u8>, Error> {
        Ok(self.canonical_body()?.into_bytes())
    }

    /// The canonical JSON of the whole entry: the line in the log, and the Merkle leaf.
    pub fn line(&self) -> Result<Vec<u8>, Error> {
        Ok(self.canonical_body()?.line(&self.sig, self.cosig.as_deref()))
    }

    /// For a rotation entry: the new key it hands over to.
    pub fn rotation_key(&self) -> Option<[u8; 32]> {
        if self.operation != ROTATION_OPERATION {
            return None;
        }
        self.details.get("new_public_key").and_then(Value::as_str).and_then(unb64::<32>)
    }
}

/// Keys (any case, anywhere in the key) whose values the writer never stores: they replace the
/// value with `[REDACTED]`.
const SECRET_KEYS: &[&str] =
    &["secret", "password", "passwd", "token", "api_key", "apikey", "authorization", "private_key", "credential", "cookie"];

/// A key whose value is an object of HTTP headers: the names stay, every value is redacted.
const HEADERS_KEY: &str = "headers";

const REDACTED: &str = "[REDACTED]";

/// Redacts secrets from details, recursively, by field: the value under a secret key, and every
/// value of a `headers` object. Never by what a value looks like: a value is what the record says
/// happened (a path, a name), and one that looked like a secret (`vault://…`) would let an agent
/// hide its own requests from the log.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|s| lower.contains(s)) {
                    *v = Value::String(REDACTED.into());
                } else if lower == HEADERS_KEY {
                    match v {
                        Value::Object(headers) => headers.values_mut().for_each(|h| *h = Value::String(REDACTED.into())),
                        other => *other = Value::String(REDACTED.into()),
                    }
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// A signed statement of the log's size and Merkle root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    /// Base64 RFC 6962 root hash.
    pub root: String,
    pub ts: String,
    pub key_id: String,
    /// Base64 signature over `pae(CHECKPOINT_TYPE, note_body())`.
    pub sig: String,
}

impl Checkpoint {
    /// The signed note body, in the C2SP tlog-checkpoint layout: origin, size, root, then an
    /// extension line with the time.
    pub fn note_body(&self) -> String {
        format!("{}\n{}\n{}\ntimestamp {}\n", self.origin, self.size, self.root, self.ts)
    }

    /// The whole signed note, as C2SP prints it.
    pub fn to_note(&self) -> String {
        format!("{}\n\u{2014} {} {}:{}\n", self.note_body(), self.origin, self.key_id, self.sig)
    }

    pub fn root_hash(&self) -> Option<Hash> {
        unb64::<32>(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The definition: the canonical JSON of the entry's serde form.
    fn reference(entry: &Entry, with_signatures: bool) -> Result<Vec<u8>, String> {
        let mut value = serde_json::to_value(entry).map_err(|e| e.to_string())?;
        if let (Value::Object(map), false) = (&mut value, with_signatures) {
            map.remove("sig");
            map.remove("cosig");
        }
        canonical::to_vec(&value).map_err(|e| e.0)
    }

    fn entry(seq: u64, details: Value, cosig: Option<&str>) -> Entry {
        let Value::Object(details) = details else { panic!("details must be an object") };
        Entry {
            v: FORMAT_VERSION,
            log: "symbiont.audit/0123456789abcdef".into(),
            seq,
            ts: "2026-11-27T02:40:15.123456Z".into(),
            agent: "agent \"q\" \\ \u{1}\u{1f}\u{7f} é €".into(),
            operation: "file_read".into(),
            decision: "allow".into(),
            details,
            key_id: "0011223344556677".into(),
            prev: GENESIS_PREV.into(),
            sig: "c2lnbmF0dXJl+/==".into(),
            cosig: cosig.map(str::to_string),
        }
    }

    #[test]
    fn direct_body_and_line_are_the_canonical_json() {
        let details = [
            json!({}),
            json!({"path": "/data/1", "bytes": 4096, "ok": true, "none": null, "ratio": 0.5, "neg": -3}),
            json!({"b": [1, "x", {"z": 1, "a": [null]}], "a": {"\u{1F600}": 1, "\u{E000}": 2, "é": 3, "e": 4}, "ctl\n": "\t\u{8}\u{c}\r"}),
            json!({"big": 1e300, "small": 5e-324, "int": 9007199254740992u64}),
        ];
        for seq in [0, 1, 9, 10, 12345, 1 << 53] {
            for d in &details {
                for cosig in [None, Some("Y29zaWc=")] {
                    let e = entry(seq, d.clone(), cosig);
                    assert_eq!(e.body().unwrap(), reference(&e, false).unwrap(), "body of {e:?}");
                    assert_eq!(e.line().unwrap(), reference(&e, true).unwrap(), "line of {e:?}");
                }
            }
        }
        let too_big = entry((1 << 53) + 1, json!({}), None);
        assert_eq!(too_big.body().unwrap_err().to_string(), reference(&too_big, false).unwrap_err());
        let bad_number = entry(1, json!({"n": u64::MAX}), None);
        assert_eq!(bad_number.line().unwrap_err().to_string(), reference(&bad_number, true).unwrap_err());
    }

    #[test]
    fn redaction_is_by_field_never_by_value() {
        let mut details = json!({
            "request": {
                "op": "file_write",
                "path": "vault://hidden.txt",
                "name": "Bearer notes.txt",
                "headers": {"Authorization": "Bearer t0k", "X-Trace": "abc"},
                "header_names": ["Authorization"],
            },
            "db_password": "hunter2",
            "nested": [{"API_KEY": {"deep": "k3y"}}, {"Session-Cookie": "c00kie"}, {"credentials": ["a", "b"]}],
            "headers": "raw",
            "run_id": "r1",
        });
        redact(&mut details);
        assert_eq!(
            details,
            json!({
                "request": {
                    "op": "file_write",
                    "path": "vault://hidden.txt",
                    "name": "Bearer notes.txt",
                    "headers": {"Authorization": "[REDACTED]", "X-Trace": "[REDACTED]"},
                    "header_names": ["Authorization"],
                },
                "db_password": "[REDACTED]",
                "nested": [{"API_KEY": "[REDACTED]"}, {"Session-Cookie": "[REDACTED]"}, {"credentials": "[REDACTED]"}],
                "headers": "[REDACTED]",
                "run_id": "r1",
            })
        );
        // What looks like a secret but is not under a secret's field is what happened: kept.
        let mut values = json!(["vault://a/b", "bearer x", "BEARER y"]);
        redact(&mut values);
        assert_eq!(values, json!(["vault://a/b", "bearer x", "BEARER y"]));
    }

    #[test]
    fn hex_is_lower_case_and_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        let text = hex(&bytes);
        assert_eq!(text, bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        assert_eq!(unhex32(&hex(&[0xab; 32])), Some([0xab; 32]));
    }
}

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
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

impl Entry {
    /// The canonical JSON of everything but the signatures: what is signed and chained.
    pub fn body(&self) -> Result<Vec<u8>, Error> {
        let mut value = serde_json::to_value(self).map_err(|e| Error::Input(e.to_string()))?;
        if let Value::Object(map) = &mut value {
            map.remove("sig");
            map.remove("cosig");
        }
        canonical::to_vec(&value).map_err(|e| Error::Input(e.0))
    }

    /// The canonical JSON of the whole entry: the line in the log, and the Merkle leaf.
    pub fn line(&self) -> Result<Vec<u8>, Error> {
        let value = serde_json::to_value(self).map_err(|e| Error::Input(e.to_string()))?;
        canonical::to_vec(&value).map_err(|e| Error::Input(e.0))
    }

    /// For a rotation entry: the new key it hands over to.
    pub fn rotation_key(&self) -> Option<[u8; 32]> {
        if self.operation != ROTATION_OPERATION {
            return None;
        }
        self.details.get("new_public_key").and_then(Value::as_str).and_then(unb64::<32>)
    }
}

/// Keys whose values the writer never stores: they replace the value with `[REDACTED]`.
const SECRET_KEYS: &[&str] =
    &["secret", "password", "passwd", "token", "api_key", "apikey", "authorization", "private_key", "credential", "cookie"];

/// Redacts secrets from details, recursively: values under secret-looking keys, and strings that
/// hold secret references (`vault://…`) or bearer tokens.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|s| lower.contains(s)) {
                    *v = Value::String("[REDACTED]".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        Value::String(s) if s.starts_with("vault://") || s.to_ascii_lowercase().starts_with("bearer ") => *s = "[REDACTED]".into(),
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

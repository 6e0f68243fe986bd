//! Ed25519 keys that never leave an HSM: a [`Signer`] over PKCS#11 (through `cryptoki`, which
//! loads the module with `dlopen` at run time, so nothing native is needed to build this crate).
//!
//! A key is named by an RFC 7512 URI:
//!
//! ```text
//! pkcs11:token=audit;object=signing-key?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/run/secrets/pin
//! ```
//!
//! Path attributes (`;`-separated) choose the token and the key: `token`, `manufacturer`, `model`,
//! `serial`, `slot-id` and `object` (the key's `CKA_LABEL`), `id` (its `CKA_ID`), `type` (only
//! `private`). Query attributes (`&`-separated): `module-path` (required), and the user PIN from
//! `pin-value`, or `pin-source` (a file, or a `file:` URI, whose first line is the PIN), or else the
//! environment variable `SYMBIONT_PKCS11_PIN`. Values are percent-decoded.
//!
//! The PIN is never shown: not in errors, not in `Debug` output, and it is held in memory only in
//! a buffer that is zeroed when dropped.

use std::{
    collections::HashMap,
    fmt,
    os::unix::ffi::OsStringExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, OnceLock, Weak},
};

use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error as CkError, RvError},
    mechanism::{
        eddsa::{EddsaParams, EddsaSignatureScheme},
        Mechanism,
    },
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    slot::Slot,
    types::RawAuthPin,
};
use ed25519_dalek::{Signature, VerifyingKey};
use secrecy::ExposeSecret as _;
use sha2::{Digest, Sha256};

use crate::{
    keys::{key_id, Signer},
    Error,
};

/// The environment variable read for the user PIN when the URI gives none.
pub const PIN_ENV: &str = "SYMBIONT_PKCS11_PIN";

/// DER of the object identifier 1.3.101.112 (id-Ed25519, RFC 8410): the `CKA_EC_PARAMS` of the keys
/// this module generates.
const ED25519_OID_DER: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER of the PrintableString "edwards25519", the other `CKA_EC_PARAMS` form PKCS#11 3.0 allows.
const ED25519_NAME_DER: &[u8] = b"\x13\x0cedwards25519";

/// Whether `spec` is a PKCS#11 URI rather than the path of a key file (name a file that really
/// starts with `pkcs11:` as `./pkcs11:…`).
pub fn is_uri(spec: &str) -> bool {
    spec.get(..7).is_some_and(|scheme| scheme.eq_ignore_ascii_case("pkcs11:"))
}

/// A parsed RFC 7512 URI naming a key. `Debug` never shows the PIN.
pub struct Pkcs11Uri {
    pub module_path: Option<PathBuf>,
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub slot_id: Option<u64>,
    /// The key's `CKA_LABEL`.
    pub object: Option<String>,
    /// The key's `CKA_ID`.
    pub id: Option<Vec<u8>>,
    pin_value: Option<RawAuthPin>,
    pin_source: Option<PathBuf>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("module_path", &self.module_path)
            .field("token", &self.token)
            .field("manufacturer", &self.manufacturer)
            .field("model", &self.model)
            .field("serial", &self.serial)
            .field("slot_id", &self.slot_id)
            .field("object", &self.object)
            .field("id", &self.id)
            .field("pin_value", &self.pin_value.as_ref().map(|_| "<redacted>"))
            .field("pin_source", &self.pin_source)
            .finish()
    }
}

fn uri_error(message: impl fmt::Display) -> Error {
    Error::Key(format!("invalid PKCS#11 URI: {message}"))
}

/// Percent-decodes an attribute's value. The error names the attribute, never the value.
fn percent_decode(name: &str, value: &str) -> Result<Vec<u8>, Error> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else { return Err(uri_error(format_args!("`{name}` has a bad percent-encoding (expected %XX)"))) };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn utf8(name: &str, bytes: Vec<u8>) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|_| uri_error(format_args!("`{name}` is not UTF-8 once percent-decoded")))
}

impl Pkcs11Uri {
    /// Parses a `pkcs11:` URI. Unknown or repeated attributes are refused rather than ignored, so
    /// that a typo cannot widen what the URI matches. Errors never contain the PIN.
    pub fn parse(uri: &str) -> Result<Pkcs11Uri, Error> {
        if !is_uri(uri) {
            return Err(uri_error("it must start with `pkcs11:`"));
        }
        let rest = &uri[7..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parsed = Pkcs11Uri {
            module_path: None,
            token: None,
            manufacturer: None,
            model: None,
            serial: None,
            slot_id: None,
            object: None,
            id: None,
            pin_value: None,
            pin_source: None,
        };
        let mut seen: Vec<&str> = Vec::new();
        let attributes = path.split(';').map(|a| (a, true)).chain(query.split('&').map(|a| (a, false)));
        for (attribute, in_path) in attributes.filter(|(a, _)| !a.is_empty()) {
            let Some((name, value)) = attribute.split_once('=') else {
                let shown = if attribute.starts_with("pin-value") { "pin-value" } else { attribute };
                return Err(uri_error(format_args!("`{shown}` is not of the form name=value")));
            };
            if seen.contains(&name) {
                return Err(uri_error(format_args!("`{name}` is given twice")));
            }
            seen.push(name);
            let decoded = percent_decode(name, value)?;
            match (name, in_path) {
                ("token", true) => parsed.token = Some(utf8(name, decoded)?),
                ("manufacturer", true) => parsed.manufacturer = Some(utf8(name, decoded)?),
                ("model", true) => parsed.model = Some(utf8(name, decoded)?),
                ("serial", true) => parsed.serial = Some(utf8(name, decoded)?),
                ("object", true) => parsed.object = Some(utf8(name, decoded)?),
                ("id", true) => parsed.id = Some(decoded),
                ("slot-id", true) => {
                    let id = utf8(name, decoded)?;
                    parsed.slot_id = Some(id.parse().map_err(|_| uri_error(format_args!("`slot-id={id}` is not a number")))?);
                }
                ("type", true) => {
                    if decoded != b"private" {
                        return Err(uri_error("the signing key is a private key: give `type=private` or no `type`"));
                    }
                }
                ("module-path", false) => parsed.module_path = Some(PathBuf::from(std::ffi::OsString::from_vec(decoded))),
                ("pin-value", false) => parsed.pin_value = Some(RawAuthPin::new(Box::new(decoded))),
                ("pin-source", false) => {
                    let source = utf8(name, decoded)?;
                    let file = source.strip_prefix("file://").or_else(|| source.strip_prefix("file:")).unwrap_or(&source);
                    parsed.pin_source = Some(PathBuf::from(file));
                }
                (_, true) => {
                    return Err(uri_error(format_args!(
                        "unsupported path attribute `{name}` (supported: token, manufacturer, model, serial, slot-id, object, id, type)"
                    )))
                }
                (_, false) => {
                    return Err(uri_error(format_args!(
                        "unsupported query attribute `{name}` (supported: module-path, pin-value, pin-source)"
                    )))
                }
            }
        }
        if parsed.pin_value.is_some() && parsed.pin_source.is_some() {
            return Err(uri_error("give `pin-value` or `pin-source`, not both"));
        }
        Ok(parsed)
    }

    /// The user PIN: `pin-value`, else the first line of the `pin-source` file, else
    /// `$SYMBIONT_PKCS11_PIN`; `None` when there is none.
    fn pin(&self) -> Result<Option<RawAuthPin>, Error> {
        if let Some(pin) = &self.pin_value {
            return Ok(Some(RawAuthPin::new(Box::new(pin.expose_secret().clone()))));
        }
        if let Some(path) = &self.pin_source {
            let mut bytes = std::fs::read(path)
                .map_err(|e| Error::Key(format!("{}: cannot read the PKCS#11 PIN (pin-source): {e}", path.display())))?;
            let line_end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
            let end = if line_end > 0 && bytes[line_end - 1] == b'\r' { line_end - 1 } else { line_end };
            // Zero what is cut off (a second line, the newline) before the buffer is dropped.
            bytes[end..].iter_mut().for_each(|b| *b = 0);
            bytes.truncate(end);
            if bytes.is_empty() {
                return Err(Error::Key(format!("{}: the PKCS#11 PIN file (pin-source) is empty", path.display())));
            }
            return Ok(Some(RawAuthPin::new(Box::new(bytes))));
        }
        Ok(std::env::var_os(PIN_ENV).map(OsStringExt::into_vec).filter(|p| !p.is_empty()).map(|p| RawAuthPin::new(Box::new(p))))
    }

    /// How messages name the key: its label and token, never the PIN.
    fn describe(&self) -> String {
        let object = match (&self.object, &self.id) {
            (Some(label), _) => format!("key `{label}`"),
            (None, Some(id)) => format!("key id {}", crate::entry::hex(id)),
            (None, None) => "key".into(),
        };
        match &self.token {
            Some(token) => format!("PKCS#11 {object} in token `{token}`"),
            None => format!("PKCS#11 {object}"),
        }
    }
}

/// A short, actionable text for a PKCS#11 error (cryptoki's own texts are paragraphs).
fn describe_ck(error: &CkError) -> String {
    match error {
        CkError::Pkcs11(rv, function) => {
            let what = match rv {
                RvError::PinIncorrect => "the PIN is incorrect",
                RvError::PinLocked => "the PIN is locked (too many wrong attempts)",
                RvError::PinExpired => "the PIN has expired",
                RvError::PinLenRange | RvError::PinInvalid => "the PIN is not valid for this token",
                RvError::UserPinNotInitialized => "the token's user PIN is not initialized",
                RvError::TokenNotPresent | RvError::DeviceRemoved => "the token is not present",
                RvError::MechanismInvalid | RvError::CurveNotSupported => {
                    "the token does not support Ed25519 (CKM_EDDSA, CKM_EC_EDWARDS_KEY_PAIR_GEN)"
                }
                RvError::KeyFunctionNotPermitted => "the key may not be used to sign (CKA_SIGN is false)",
                RvError::TokenWriteProtected => "the token is write-protected",
                RvError::UserNotLoggedIn => "not logged in to the token",
                _ => return format!("C_{function:?} failed: {rv:?}"),
            };
            format!("{what} (C_{function:?}: {rv:?})")
        }
        other => other.to_string(),
    }
}

/// Modules loaded by this process, by canonical path. A module is initialized once per process
/// (a second `C_Initialize` fails) and never finalized: finalizing would close every other
/// signer's sessions on it.
fn module(path: &Path) -> Result<Pkcs11, Error> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let canonical = path.canonicalize().map_err(|e| Error::Key(format!("PKCS#11 module {}: {e}", path.display())))?;
    let mut modules = lock(MODULES.get_or_init(Default::default));
    if let Some(context) = modules.get(&canonical) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(&canonical)
        .map_err(|e| Error::Key(format!("PKCS#11 module {}: cannot load it: {}", canonical.display(), describe_ck(&e))))?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(Error::Key(format!("PKCS#11 module {}: {}", canonical.display(), describe_ck(&e)))),
    }
    modules.insert(canonical, context.clone());
    Ok(context)
}

/// Loads and initializes the PKCS#11 module at `path` as a signer would (once per process):
/// whether this host can use it at all, before any token or key is named (`symbiont doctor`).
pub fn load_module(path: &Path) -> Result<(), Error> {
    module(path).map(drop)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A login to one token, shared by every signer of this process on that token. PKCS#11 login
/// state belongs to the application, not to a session: once one session is logged in, all are,
/// and a second `C_Login` answers "already logged in" whatever PIN it is given. So the first
/// login's PIN is remembered (as a digest) and a later signer's PIN must match it. The session
/// held here keeps the application logged in while any signer on the token lives.
struct Login {
    _session: Mutex<Session>,
    /// SHA-256 of the PIN that `C_Login` accepted; `None` when the token needed no login, or another
    /// part of the process had logged in already.
    pin_digest: Option<[u8; 32]>,
}

fn pin_digest(pin: &RawAuthPin) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"symbiont-pkcs11-pin\0");
    hasher.update(pin.expose_secret());
    hasher.finalize().into()
}

fn login(context: &Pkcs11, module: &Path, slot: Slot, uri: &Pkcs11Uri) -> Result<Arc<Login>, Error> {
    /// Logins by (module, slot id).
    type Logins = HashMap<(PathBuf, u64), Weak<Login>>;
    static LOGINS: OnceLock<Mutex<Logins>> = OnceLock::new();
    let what = uri.describe();
    let fail = |e: CkError| Error::Key(format!("{what}: {}", describe_ck(&e)));
    let token = context.get_token_info(slot).map_err(fail)?;
    let pin = if token.login_required() { uri.pin()? } else { None };
    if token.login_required() && pin.is_none() && !token.protected_authentication_path() {
        return Err(Error::Key(format!(
            "{what}: the token needs the user PIN: give `pin-source=FILE` (or `pin-value=…`) in the URI, or set {PIN_ENV}"
        )));
    }
    let mut logins = lock(LOGINS.get_or_init(Default::default));
    let key = (module.to_path_buf(), slot.id());
    if let Some(existing) = logins.get(&key).and_then(Weak::upgrade) {
        match (existing.pin_digest, &pin) {
            (Some(digest), Some(pin)) if digest != pin_digest(pin) => {
                return Err(Error::Key(format!("{what}: the PIN is incorrect")));
            }
            _ => return Ok(existing),
        }
    }
    let session = context.open_ro_session(slot).map_err(fail)?;
    let mut digest = None;
    if token.login_required() {
        let result = match &pin {
            Some(pin) => session.login_with_raw(UserType::User, pin),
            None => session.login(UserType::User, None),
        };
        match result {
            Ok(()) => digest = pin.as_ref().map(pin_digest),
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(fail(e)),
        }
    }
    let login = Arc::new(Login { _session: Mutex::new(session), pin_digest: digest });
    logins.insert(key, Arc::downgrade(&login));
    Ok(login)
}

/// The slot whose token matches the URI: exactly one must.
fn find_slot(context: &Pkcs11, uri: &Pkcs11Uri) -> Result<Slot, Error> {
    let fail = |e: CkError| Error::Key(format!("{}: cannot list the tokens: {}", uri.describe(), describe_ck(&e)));
    let mut matching = Vec::new();
    let mut labels = Vec::new();
    for slot in context.get_slots_with_initialized_token().map_err(fail)? {
        let info = context.get_token_info(slot).map_err(fail)?;
        labels.push(format!("`{}`", info.label()));
        let matches = |wanted: &Option<String>, have: &str| wanted.as_deref().is_none_or(|w| w == have);
        if matches(&uri.token, info.label())
            && matches(&uri.manufacturer, info.manufacturer_id())
            && matches(&uri.model, info.model())
            && matches(&uri.serial, info.serial_number())
            && uri.slot_id.is_none_or(|id| id == slot.id())
        {
            matching.push(slot);
        }
    }
    match matching.as_slice() {
        [slot] => Ok(*slot),
        [] if labels.is_empty() => Err(Error::Key(format!("{}: the module has no initialized token", uri.describe()))),
        [] => Err(Error::Key(format!("{}: no such token (the module has {})", uri.describe(), labels.join(", ")))),
        _ => Err(Error::Key(format!(
            "{}: {} tokens match; name one with `token=`, `serial=` or `slot-id=` (the module has {})",
            uri.describe(),
            matching.len(),
            labels.join(", ")
        ))),
    }
}

/// The 32 raw bytes of an Ed25519 `CKA_EC_POINT`: a DER OCTET STRING wrapping them (what PKCS#11
/// 3.0 specifies and SoftHSM2 stores), or the raw bytes (what some tokens return).
pub fn parse_ec_point(bytes: &[u8]) -> Option<[u8; 32]> {
    match bytes {
        [0x04, 0x20, rest @ ..] | [0x04, 0x81, 0x20, rest @ ..] if rest.len() == 32 => rest.try_into().ok(),
        raw if raw.len() == 32 => raw.try_into().ok(),
        _ => None,
    }
}

fn is_ed25519_params(params: &[u8]) -> bool {
    params == ED25519_OID_DER || params == ED25519_NAME_DER
}

/// Sessions are pooled: `sign` takes an idle session (opening one when none is idle), signs, and
/// puts it back. A PKCS#11 session runs one operation at a time and `cryptoki::Session` is not
/// `Sync`, but the log signs in its appending threads in parallel, so one session behind a mutex
/// would serialize them all; a session per call would open and close a session (a round trip to
/// a network HSM) for every entry. The pool holds as many sessions as threads ever signed at once
/// (at most [`MAX_IDLE_SESSIONS`] idle); a session that fails is dropped rather than reused.
const MAX_IDLE_SESSIONS: usize = 16;

/// An Ed25519 key in a PKCS#11 token. The private key never leaves the token: this holds only
/// handles to it, the public key, and the sessions used to sign.
pub struct Pkcs11Signer {
    context: Pkcs11,
    slot: Slot,
    key: ObjectHandle,
    public: [u8; 32],
    id: String,
    token: String,
    label: String,
    idle: Mutex<Vec<Session>>,
    /// Dropped after the sessions above (fields drop in order): keeps the token logged in.
    _login: Arc<Login>,
}

impl Pkcs11Signer {
    /// Opens the key a `pkcs11:` URI names, logs in, and checks that it signs and that its public
    /// key verifies what it signs.
    pub fn open(uri: &str) -> Result<Pkcs11Signer, Error> {
        Pkcs11Signer::open_parsed(&Pkcs11Uri::parse(uri)?)
    }

    /// Generates an Ed25519 key pair inside the token (`CKM_EC_EDWARDS_KEY_PAIR_GEN`) under the
    /// URI's `object` label (and `id`, or a random one): the private key is a token object that is
    /// sensitive, never extractable, and may only sign. Refuses when an object with that label
    /// already exists. Returns the new key, opened as by [`Pkcs11Signer::open`].
    pub fn generate(uri: &str) -> Result<Pkcs11Signer, Error> {
        let uri = Pkcs11Uri::parse(uri)?;
        let Some(label) = uri.object.clone() else {
            return Err(uri_error("keygen needs `object=LABEL`, the new key's label"));
        };
        let (context, slot, _login) = connect(&uri)?;
        let what = uri.describe();
        let fail = |e: CkError| Error::Key(format!("{what}: {}", describe_ck(&e)));
        let session = context.open_rw_session(slot).map_err(fail)?;
        let existing = session.find_objects(&[Attribute::Label(label.clone().into_bytes())]).map_err(fail)?;
        if !existing.is_empty() {
            return Err(Error::Key(format!(
                "{what}: the token already has an object with this label; choose another `object=` (keygen never replaces a key)"
            )));
        }
        let id = match &uri.id {
            Some(id) => id.clone(),
            None => {
                let mut id = vec![0u8; 16];
                getrandom::getrandom(&mut id).map_err(|e| Error::Key(format!("the operating system gave no randomness: {e}")))?;
                id
            }
        };
        let label = label.into_bytes();
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(ED25519_OID_DER.to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
            Attribute::Id(id.clone()),
        ];
        session.generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public_template, &private_template).map_err(fail)?;
        drop(session);
        Pkcs11Signer::open_parsed(&Pkcs11Uri { id: Some(id), ..uri })
    }

    fn open_parsed(uri: &Pkcs11Uri) -> Result<Pkcs11Signer, Error> {
        if uri.object.is_none() && uri.id.is_none() {
            return Err(uri_error("name the key with `object=LABEL` (or `id=`)"));
        }
        let (context, slot, login) = connect(uri)?;
        let what = uri.describe();
        let fail = |e: CkError| Error::Key(format!("{what}: {}", describe_ck(&e)));
        let session = context.open_ro_session(slot).map_err(fail)?;
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        template.extend(uri.object.as_ref().map(|l| Attribute::Label(l.clone().into_bytes())));
        template.extend(uri.id.as_ref().map(|id| Attribute::Id(id.clone())));
        let key = match session.find_objects(&template).map_err(fail)?.as_slice() {
            [key] => *key,
            [] => return Err(Error::Key(format!("{what}: no such private key in the token"))),
            keys => return Err(Error::Key(format!("{what}: {} private keys match; add `id=` to the URI to choose one", keys.len()))),
        };
        let attributes =
            session.get_attributes(key, &[AttributeType::KeyType, AttributeType::EcParams, AttributeType::Id]).map_err(fail)?;
        let mut key_id_attr = None;
        for attribute in attributes {
            match attribute {
                Attribute::KeyType(t) if t != KeyType::EC_EDWARDS => {
                    return Err(Error::Key(format!("{what}: not an Ed25519 key (its key type is {t})")));
                }
                Attribute::EcParams(p) if !is_ed25519_params(&p) => {
                    return Err(Error::Key(format!("{what}: an Edwards key on another curve than Ed25519")));
                }
                Attribute::Id(id) if !id.is_empty() => key_id_attr = Some(id),
                _ => {}
            }
        }
        let public = public_key(&session, uri, key, key_id_attr).map_err(|m| Error::Key(format!("{what}: {m}")))?;
        let token = context.get_token_info(slot).map(|t| t.label().to_string()).map_err(fail)?;
        let signer = Pkcs11Signer {
            id: key_id(&public),
            public,
            context,
            slot,
            key,
            token,
            label: uri.object.clone().unwrap_or_default(),
            idle: Mutex::new(vec![session]),
            _login: login,
        };
        // A mismatched public key object would make every entry unverifiable: check the pair now.
        let probe = b"symbiont-audit pkcs11 key check";
        let signature = signer.sign(probe).map_err(|e| Error::Key(format!("{what}: cannot sign: {e}")))?;
        let verifying = VerifyingKey::from_bytes(&public).map_err(|_| Error::Key(format!("{what}: the public key is not valid")))?;
        verifying
            .verify_strict(probe, &Signature::from_bytes(&signature))
            .map_err(|_| Error::Key(format!("{what}: the public key object does not match the private key")))?;
        Ok(signer)
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.token
    }

    /// The key's `CKA_LABEL` as the URI named it (empty when it named the key by `id` alone).
    pub fn label(&self) -> &str {
        &self.label
    }

    fn session(&self) -> Result<Session, Error> {
        if let Some(session) = lock(&self.idle).pop() {
            return Ok(session);
        }
        self.context.open_ro_session(self.slot).map_err(|e| self.error(e))
    }

    fn error(&self, e: CkError) -> Error {
        Error::Key(format!("PKCS#11 key `{}` in token `{}`: {}", self.label, self.token, describe_ck(&e)))
    }
}

/// Loads the module, finds the token and logs in.
fn connect(uri: &Pkcs11Uri) -> Result<(Pkcs11, Slot, Arc<Login>), Error> {
    let Some(module_path) = &uri.module_path else {
        return Err(uri_error("it needs `?module-path=/path/to/the/pkcs11/module.so`"));
    };
    let context = module(module_path)?;
    let slot = find_slot(&context, uri)?;
    let canonical = module_path.canonicalize().unwrap_or_else(|_| module_path.clone());
    let login = login(&context, &canonical, slot, uri)?;
    Ok((context, slot, login))
}

/// The public key of the pair: from the public key object with the same label (and `CKA_ID`), or
/// from the private key's own `CKA_EC_POINT` where a token keeps one there.
fn public_key(session: &Session, uri: &Pkcs11Uri, private: ObjectHandle, id: Option<Vec<u8>>) -> Result<[u8; 32], String> {
    let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    template.extend(uri.object.as_ref().map(|l| Attribute::Label(l.clone().into_bytes())));
    template.extend(id.or_else(|| uri.id.clone()).map(Attribute::Id));
    let found = session.find_objects(&template).map_err(|e| describe_ck(&e))?;
    let object = match found.as_slice() {
        [object] => *object,
        [] => private,
        _ => return Err(format!("{} public keys match; add `id=` to the URI to choose one", found.len())),
    };
    let attributes = session.get_attributes(object, &[AttributeType::EcPoint]).map_err(|e| describe_ck(&e))?;
    match attributes.into_iter().next() {
        Some(Attribute::EcPoint(point)) => {
            parse_ec_point(&point).ok_or_else(|| "the public key (CKA_EC_POINT) is not 32 bytes, raw or DER-wrapped".to_string())
        }
        _ => Err("no public key object with the same label (and CKA_ID) in the token".into()),
    }
}

impl Signer for Pkcs11Signer {
    fn key_id(&self) -> &str {
        &self.id
    }

    fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Pure Ed25519 (`CKM_EDDSA` without parameters) inside the token. A session that was closed
    /// under us (the token was reset, or a network HSM reconnected) is replaced once.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], Error> {
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let mut retried = false;
        loop {
            let session = self.session()?;
            match session.sign(&mechanism, self.key, message) {
                Ok(signature) => {
                    let mut idle = lock(&self.idle);
                    if idle.len() < MAX_IDLE_SESSIONS {
                        idle.push(session);
                    }
                    drop(idle);
                    return signature.try_into().map_err(|s: Vec<u8>| {
                        Error::Key(format!(
                            "PKCS#11 key `{}` in token `{}`: the token returned a {}-byte signature, not 64",
                            self.label,
                            self.token,
                            s.len()
                        ))
                    });
                }
                Err(CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _)) if !retried => retried = true,
                Err(e) => return Err(self.error(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "s3cr3t-Pin";

    #[test]
    fn parses_an_rfc7512_uri() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=audit%20log;object=signing-key;id=%01%ff;type=private;slot-id=7\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=s3cr3t-Pin",
        )
        .unwrap();
        assert_eq!(uri.token.as_deref(), Some("audit log"));
        assert_eq!(uri.object.as_deref(), Some("signing-key"));
        assert_eq!(uri.id.as_deref(), Some(&[0x01, 0xff][..]));
        assert_eq!(uri.slot_id, Some(7));
        assert_eq!(uri.module_path.as_deref(), Some(Path::new("/usr/lib/softhsm/libsofthsm2.so")));
        assert_eq!(uri.pin().unwrap().unwrap().expose_secret().as_slice(), PIN.as_bytes());
        let debug = format!("{uri:?}");
        assert!(!debug.contains(PIN) && debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn reads_the_pin_from_a_file_first_line() {
        let dir = std::env::temp_dir().join(format!("symbiont-pkcs11-pin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pin");
        std::fs::write(&file, format!("{PIN}\r\nsecond line\n")).unwrap();
        for source in [file.display().to_string(), format!("file:{}", file.display()), format!("file://{}", file.display())] {
            let uri = Pkcs11Uri::parse(&format!("pkcs11:object=k?pin-source={source}")).unwrap();
            assert_eq!(uri.pin().unwrap().unwrap().expose_secret().as_slice(), PIN.as_bytes());
        }
        std::fs::write(&file, "\n").unwrap();
        let error = Pkcs11Uri::parse(&format!("pkcs11:object=k?pin-source={}", file.display())).unwrap().pin().err().unwrap();
        assert!(error.to_string().contains("is empty"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_bad_uris_without_echoing_the_pin() {
        for (uri, expected) in [
            ("file:/k", "must start with `pkcs11:`"),
            ("pkcs11:object=a;object=b", "`object` is given twice"),
            ("pkcs11:colour=blue", "unsupported path attribute `colour`"),
            ("pkcs11:object=k?module-name=softhsm2", "unsupported query attribute `module-name`"),
            ("pkcs11:object=k?pin-value=s3cr3t-Pin&pin-source=/f", "not both"),
            ("pkcs11:object=k?pin-value=s3cr3t-Pin%zz", "`pin-value` has a bad percent-encoding"),
            ("pkcs11:object=k;type=public", "type=private"),
            ("pkcs11:slot-id=x", "not a number"),
            ("pkcs11:token=audit?module-path=/nonexistent/module.so&pin-value=s3cr3t-Pin", "`object=LABEL`"),
            ("pkcs11:object=k?pin-value=s3cr3t-Pin", "module-path"),
        ] {
            let error = Pkcs11Signer::open(uri).err().unwrap_or_else(|| panic!("{uri} was accepted")).to_string();
            assert!(error.contains(expected), "{uri}: {error}");
            assert!(!error.contains(PIN), "{uri}: the error shows the PIN: {error}");
        }
        assert!(is_uri("PKCS11:object=k") && !is_uri("./pkcs11:object=k") && !is_uri("key"));
    }

    #[test]
    fn a_missing_module_is_named() {
        let error = Pkcs11Signer::open("pkcs11:object=k?module-path=/nonexistent/libpkcs11.so&pin-value=s3cr3t-Pin").err().unwrap();
        let text = error.to_string();
        assert!(text.contains("/nonexistent/libpkcs11.so") && !text.contains(PIN), "{text}");
    }

    #[test]
    fn ec_points_raw_or_der_wrapped() {
        let raw = [7u8; 32];
        assert_eq!(parse_ec_point(&raw), Some(raw));
        let mut der = vec![0x04, 0x20];
        der.extend(raw);
        assert_eq!(parse_ec_point(&der), Some(raw));
        let mut long = vec![0x04, 0x81, 0x20];
        long.extend(raw);
        assert_eq!(parse_ec_point(&long), Some(raw));
        assert_eq!(parse_ec_point(&der[..33]), None);
        assert_eq!(parse_ec_point(&[0x04, 0x21, 0]), None);
        assert!(
            is_ed25519_params(&ED25519_OID_DER) && is_ed25519_params(ED25519_NAME_DER) && !is_ed25519_params(&[6, 3, 0x2b, 0x65, 0x71])
        );
    }
}

//! Signing keys: a [`Signer`] trait (a key on disk, or one that never leaves an HSM), key files
//! written with mode 0600, and key ids.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::Error;

/// Something that signs with an Ed25519 key.
pub trait Signer: Send + Sync {
    fn key_id(&self) -> &str;
    fn public_key(&self) -> [u8; 32];
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], Error>;
}

/// A key's id: the first 8 bytes of SHA-256 over a domain tag and the public key, in hex.
pub fn key_id(public_key: &[u8; 32]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"symbiont-audit-key-id\0");
    hasher.update(public_key);
    hasher.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// An Ed25519 key held in memory, loaded from a key file.
pub struct FileSigner {
    key: SigningKey,
    id: String,
}

impl FileSigner {
    pub fn from_seed(seed: [u8; 32]) -> FileSigner {
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(&key.verifying_key().to_bytes());
        FileSigner { key, id }
    }

    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<FileSigner, Error> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| Error::Key(format!("the operating system gave no randomness: {e}")))?;
        Ok(FileSigner::from_seed(seed))
    }

    /// Reads a private key file, refusing one that anybody but its owner could have read or
    /// replaced (see [`read_private`]).
    pub fn load(path: &Path) -> Result<FileSigner, Error> {
        let text = read_private(path)?;
        let body = text
            .trim()
            .strip_prefix(PRIVATE_HEADER)
            .and_then(|t| t.strip_suffix(PRIVATE_FOOTER))
            .ok_or_else(|| Error::Key(format!("{}: not a Symbiont private key (expected `{PRIVATE_HEADER}`)", path.display())))?;
        let seed: [u8; 32] = B64
            .decode(body.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Key(format!("{}: the key is not 32 base64-encoded bytes", path.display())))?;
        Ok(FileSigner::from_seed(seed))
    }

    /// Writes the private key to `path` (mode 0600, never over an existing file) and the public
    /// key to `path.pub`.
    pub fn write(&self, path: &Path) -> Result<PathBuf, Error> {
        let private = format!("{PRIVATE_HEADER}\n{}\n{PRIVATE_FOOTER}\n", B64.encode(self.key.to_bytes()));
        create_new_0600(path, private.as_bytes())?;
        let public_path = public_path(path);
        write_public_key(&public_path, &self.public_key())?;
        Ok(public_path)
    }
}

/// A public key file's one line, `symbiont-ed25519 BASE64` (what [`PublicKey::load`] reads).
pub fn public_key_line(public_key: &[u8; 32]) -> String {
    format!("{PUBLIC_PREFIX} {}\n", B64.encode(public_key))
}

/// Writes a public key file (never over an existing file).
pub fn write_public_key(path: &Path, public_key: &[u8; 32]) -> Result<(), Error> {
    create_new_0600(path, public_key_line(public_key).as_bytes())
}

const PRIVATE_HEADER: &str = "-----BEGIN SYMBIONT ED25519 PRIVATE KEY-----";
const PRIVATE_FOOTER: &str = "-----END SYMBIONT ED25519 PRIVATE KEY-----";
const PUBLIC_PREFIX: &str = "symbiont-ed25519";

pub fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// The text of a private key file, read only if it is the effective user's own regular file,
/// reached without following a symbolic link and readable by nobody else (mode 0600 or
/// stricter). A key that others could read is no longer a secret, and one that a repository
/// ships (git checks files out 0644, and keeps links) is one whose signatures anybody can forge:
/// either would make the audit log prove nothing.
fn read_private(path: &Path) -> Result<String, Error> {
    use std::{io::Read, os::unix::fs::MetadataExt};
    let refuse = |why: String| Error::Key(format!("{}: {why}", path.display()));
    let mut file =
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refuse("the key file is a symbolic link; a key is read only from a file of its own".into()),
            _ => refuse(format!("cannot read the key: {e}")),
        })?;
    let meta = file.metadata().map_err(|e| refuse(format!("cannot read the key: {e}")))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !meta.is_file() {
        return Err(refuse("the key is not a regular file".into()));
    }
    if meta.uid() != euid {
        return Err(refuse(format!("the key file is owned by uid {}, not by the user signing (uid {euid})", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(refuse(format!(
            "the key file is readable or writable by others (mode {:o}): a private key must be mode 0600 (chmod 600 {})",
            meta.mode() & 0o777,
            path.display()
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| refuse(format!("cannot read the key: {e}")))?;
    Ok(text)
}

/// Creates `path` with `contents`, mode 0600, never over an existing file, and whole or not at
/// all: the contents go to a temporary file beside it, which is then linked at `path` (a link
/// fails when `path` exists). Runs of one workspace started together each try to make its key: one
/// makes it, and the others, failing, read a complete key rather than a half-written one.
fn create_new_0600(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let cannot = |what: &str, e: std::io::Error| Error::Key(format!("{}: cannot {what} the key file: {e}", path.display()));
    // Unique among the processes (pid) and the threads of this one (a count) writing beside it.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.{}.tmp", std::process::id(), WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let temporary = PathBuf::from(temporary);
    let write = |at: &Path| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(at)?;
        file.write_all(contents).and_then(|()| file.sync_all())
    };
    let linked = write(&temporary).and_then(|()| fs::hard_link(&temporary, path));
    let _ = fs::remove_file(&temporary);
    match linked {
        // A filesystem without hard links: made in place (whole once this returns).
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP)) => write(path).map_err(|e| cannot("create", e)),
        linked => linked.map_err(|e| cannot("create", e)),
    }
}

impl Signer for FileSigner {
    fn key_id(&self) -> &str {
        &self.id
    }

    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], Error> {
        Ok(self.key.sign(message).to_bytes())
    }
}

/// A public key a verifier trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: String,
    pub key: VerifyingKey,
}

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, Error> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| Error::Key("not a valid Ed25519 public key".into()))?;
        Ok(PublicKey { id: key_id(bytes), key })
    }

    /// Reads a `FILE.pub` written by `keygen`.
    pub fn load(path: &Path) -> Result<PublicKey, Error> {
        let text = fs::read_to_string(path).map_err(|e| Error::Key(format!("{}: cannot read the public key: {e}", path.display())))?;
        let encoded = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .map(str::trim)
            .ok_or_else(|| Error::Key(format!("{}: not a Symbiont public key (expected `{PUBLIC_PREFIX} BASE64`)", path.display())))?;
        let bytes: [u8; 32] = B64
            .decode(encoded)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Key(format!("{}: the public key is not 32 base64-encoded bytes", path.display())))?;
        PublicKey::from_bytes(&bytes).map_err(|e| Error::Key(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs of one workspace started together all make its key at once: one key file is made,
    /// whole, and every one of them reads that key.
    #[test]
    fn keys_made_at_once_are_one_key_read_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("symbiont-keys-at-once-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.key");
        let made: Vec<(bool, [u8; 32])> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let made = FileSigner::generate().unwrap().write(&path).is_ok();
                        (made, FileSigner::load(&path).expect("the key is read whole").public_key())
                    })
                })
                .collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        });
        assert_eq!(made.iter().filter(|(made, _)| *made).count(), 1, "one run makes the key");
        assert!(made.iter().all(|(_, key)| *key == made[0].1), "every run reads the same key");
        let mut left: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["audit.key", "audit.key.pub"], "no temporary file is left");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! The bus's cryptography, all from maintained RustCrypto/dalek crates: each agent has an
//! Ed25519 signing key and an X25519 key-agreement key. A message from A to B is encrypted with
//! ChaCha20-Poly1305 under a key derived (HKDF-SHA256) from the X25519 agreement of A's and B's
//! keys and the direction `A → B`, so each direction has its own key and the per-pair sequence
//! number is a nonce that never repeats under a key. The header (sender, recipient, sequence) is
//! the AEAD's associated data, and the sender signs header and ciphertext.

use chacha20poly1305::{
    aead::{Aead, KeyInit, Payload},
    ChaCha20Poly1305, Key, Nonce,
};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use hkdf::Hkdf;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

/// What the bus knows of an agent: its public keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicIdentity {
    pub verifying: VerifyingKey,
    pub agreement: PublicKey,
}

/// An agent's keys, held by the runtime (never by the agent's code).
pub struct Identity {
    signing: SigningKey,
    agreement: StaticSecret,
    public: PublicIdentity,
}

fn random32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source failed");
    bytes
}

impl Identity {
    pub fn generate() -> Identity {
        let signing = SigningKey::from_bytes(&random32());
        let agreement = StaticSecret::from(random32());
        let public = PublicIdentity { verifying: signing.verifying_key(), agreement: PublicKey::from(&agreement) };
        Identity { signing, agreement, public }
    }

    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// The X25519 agreement with `peer`: the same from both ends, so each member computes it
    /// once per peer and derives both directions' keys from it ([`channel_key`]).
    pub fn agree(&self, peer: &PublicIdentity) -> [u8; 32] {
        *self.agreement.diffie_hellman(&peer.agreement).as_bytes()
    }

    /// The AEAD for messages from `from` (this identity) to `to` (`peer`), or, with the names the
    /// other way round, from `peer` to this identity.
    pub fn channel_key(&self, peer: &PublicIdentity, from: &str, to: &str) -> ChaCha20Poly1305 {
        channel_key(&self.agree(peer), from, to)
    }

    pub fn sign(&self, bytes: &[u8]) -> [u8; 64] {
        self.signing.sign(bytes).to_bytes()
    }
}

/// The AEAD for messages `from → to`, from the two agents' X25519 agreement: HKDF-SHA256 with the
/// direction as its info, so each direction has its own key.
pub fn channel_key(shared: &[u8; 32], from: &str, to: &str) -> ChaCha20Poly1305 {
    let hkdf = Hkdf::<Sha256>::new(Some(b"symbiont-bus/v1"), shared);
    let mut key = [0u8; 32];
    let info = [from.as_bytes(), &[0], to.as_bytes()].concat();
    hkdf.expand(&info, &mut key).expect("32 bytes is a valid HKDF-SHA256 length");
    ChaCha20Poly1305::new(Key::from_slice(&key))
}

/// The bytes a header stands for: the AEAD's associated data and the start of what is signed.
pub fn header(from: &str, to: &str, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(from.len() + to.len() + 24);
    out.extend_from_slice(b"symbiont-bus/v1\0");
    out.extend_from_slice(&(from.len() as u32).to_be_bytes());
    out.extend_from_slice(from.as_bytes());
    out.extend_from_slice(&(to.len() as u32).to_be_bytes());
    out.extend_from_slice(to.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

fn nonce(seq: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&seq.to_be_bytes());
    *Nonce::from_slice(&bytes)
}

pub fn seal(key: &ChaCha20Poly1305, header: &[u8], seq: u64, plaintext: &[u8]) -> Vec<u8> {
    key.encrypt(&nonce(seq), Payload { msg: plaintext, aad: header }).expect("ChaCha20-Poly1305 encrypts any message under 256 GiB")
}

pub fn open(key: &ChaCha20Poly1305, header: &[u8], seq: u64, ciphertext: &[u8]) -> Option<Vec<u8>> {
    key.decrypt(&nonce(seq), Payload { msg: ciphertext, aad: header }).ok()
}

fn signed_bytes(header: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    [header, ciphertext].concat()
}

pub fn sign(identity: &Identity, header: &[u8], ciphertext: &[u8]) -> [u8; 64] {
    identity.sign(&signed_bytes(header, ciphertext))
}

pub fn verify(public: &PublicIdentity, header: &[u8], ciphertext: &[u8], signature: &[u8; 64]) -> bool {
    public.verifying.verify(&signed_bytes(header, ciphertext), &Signature::from_bytes(signature)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_derive_the_same_key_per_direction() {
        let (a, b) = (Identity::generate(), Identity::generate());
        let h = header("a", "b", 1);
        let sealed = seal(&a.channel_key(b.public(), "a", "b"), &h, 1, b"hello");
        assert_eq!(open(&b.channel_key(a.public(), "a", "b"), &h, 1, &sealed).as_deref(), Some(&b"hello"[..]));
        // The other direction has another key; another seq or header fails.
        assert!(open(&b.channel_key(a.public(), "b", "a"), &h, 1, &sealed).is_none());
        assert!(open(&b.channel_key(a.public(), "a", "b"), &h, 2, &sealed).is_none());
        assert!(open(&b.channel_key(a.public(), "a", "b"), &header("a", "c", 1), 1, &sealed).is_none());
        let signature = sign(&a, &h, &sealed);
        assert!(verify(a.public(), &h, &sealed, &signature));
        assert!(!verify(b.public(), &h, &sealed, &signature));
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(!verify(a.public(), &h, &flipped, &signature));
    }
}

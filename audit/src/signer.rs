//! Which signer a key reference names: above both kinds of key, so neither imports the other.

use std::{path::Path, sync::Arc};

use crate::{
    keys::{FileSigner, Signer},
    pkcs11::{self, Pkcs11Signer},
    Error,
};

/// Loads a signing key from a key reference: an RFC 7512 `pkcs11:` URI names a key in an HSM
/// ([`Pkcs11Signer`]); anything else is the path of a key file ([`FileSigner`]).
pub fn load_signer(spec: &str) -> Result<Arc<dyn Signer>, Error> {
    if pkcs11::is_uri(spec) {
        Ok(Arc::new(Pkcs11Signer::open(spec)?))
    } else {
        Ok(Arc::new(FileSigner::load(Path::new(spec))?))
    }
}

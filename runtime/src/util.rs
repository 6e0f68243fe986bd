//! Small helpers shared by the runtime's modules.

use std::future::Future;
use std::pin::Pin;

/// A boxed future: the sandbox traits return these so that backends are object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A random identifier of `bytes` random bytes, in hex.
pub fn random_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system's random source failed");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

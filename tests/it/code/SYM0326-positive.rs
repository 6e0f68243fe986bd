// Code loaded at run time from Rust.
use libloading::{Library, Symbol};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lib = unsafe { libloading::Library::new("plugin.so")? }; // HIT
    let other = unsafe { Library::new("other.so")? }; // HIT
    unsafe {
        let f: Symbol<unsafe extern "C" fn()> = lib.get(b"run")?;
        f();
    }
    drop(other);
    Ok(())
}

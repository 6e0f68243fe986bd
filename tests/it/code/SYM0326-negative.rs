// Look-alikes of dynamic loading.
mod plugins {
    pub struct Registry;
    impl Registry {
        pub fn new() -> Registry {
            Registry
        }
    }
}

struct Library;

impl Library {
    fn new() -> Library {
        Library
    }
}

fn main() {
    let registry = plugins::Registry::new();
    let lib = Library::new();
    // libloading::Library::new("plugin.so")
    let doc = "libloading::Library::new(\"plugin.so\")";
    drop((registry, lib, doc));
}

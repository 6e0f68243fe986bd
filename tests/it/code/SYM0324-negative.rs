// Look-alikes of process spawning.
mod my_crate {
    pub struct Command;
    impl Command {
        pub fn new(_: &str) -> Command {
            Command
        }
    }
}

struct Command;

impl Command {
    fn new() -> Command {
        Command
    }
}

fn main() {
    let out = my_crate::Command::new("ls");
    let local = Command::new();
    let id = std::process::id();
    // std::process::Command::new("ls")
    let doc = "Command::new(\"ls\")";
    drop((out, local, id, doc));
}

//! The catalogue of standard operations. `docs/operations.md` documents the same table; a test
//! keeps them equal.
//!
//! Operations form a hierarchy: a rule about an operation also covers the operations beneath it
//! (`deny: ["network_access"]` denies `http_request`; `allow: ["file_access"]` allows
//! `file_read`).

/// One standard operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub name: &'static str,
    /// The broader operation this one is a case of.
    pub parent: Option<&'static str>,
    pub description: &'static str,
}

const fn op(name: &'static str, parent: Option<&'static str>, description: &'static str) -> Operation {
    Operation { name, parent, description }
}

pub static OPERATIONS: &[Operation] = &[
    // Data the agent was given.
    op("read", None, "Read data or documents the agent was handed or may look up."),
    op("write", None, "Change data or documents outside the agent's own memory."),
    op("analyze", None, "Compute over data already in hand (no side effects)."),
    op("generate_code", None, "Produce source code as output."),
    op("summarize", Some("analyze"), "Condense text or data."),
    op("search", Some("read"), "Query an index or knowledge base."),
    // Files.
    op("file_access", None, "Any access to the file system."),
    op("file_read", Some("file_access"), "Read a file or list a directory."),
    op("file_system_write", Some("file_access"), "Create, write, append to, rename or delete files or directories."),
    op("file_delete", Some("file_system_write"), "Delete files or directories."),
    // Network.
    op("network_access", None, "Any network connection."),
    op("http_request", Some("network_access"), "An HTTP request in plain text (no TLS)."),
    op("https_request", Some("network_access"), "An HTTP request over TLS."),
    op("web_request", Some("network_access"), "Fetch a web page or API response, over HTTP or HTTPS."),
    op("dns_lookup", Some("network_access"), "Resolve a host name."),
    op("socket_connect", Some("network_access"), "Open a raw TCP/UDP connection or WebSocket."),
    // Processes and code.
    op("execute_code", None, "Run code: spawn a process or evaluate code dynamically."),
    op("spawn_process", Some("execute_code"), "Start another program."),
    op("dynamic_code", Some("execute_code"), "Evaluate code built at run time (`eval`, `exec`, `new Function`)."),
    op("invoke_tool", None, "Call a tool exposed to the agent (MCP or built-in)."),
    // Environment and secrets.
    op("env_access", None, "Read or change environment variables."),
    op("secret_access", None, "Read a secret (vault reference, key, token)."),
    // Messaging and agents.
    op("send_message", None, "Send a message to another agent or channel."),
    op("receive_message", None, "Accept a message from another agent or channel."),
    op("publish", Some("send_message"), "Publish an event to a topic."),
    op("send_notification", Some("send_message"), "Notify a person (email, chat, SMS)."),
    op("delegate", Some("send_message"), "Hand a task to another agent."),
    op("spawn_agent", None, "Start another agent."),
    // Memory.
    op("memory_read", None, "Read the agent's persistent memory."),
    op("memory_write", None, "Write the agent's persistent memory."),
    // Governance.
    op("modify_policy", None, "Change a policy at run time."),
    op("request_approval", None, "Ask a person to approve an action."),
];

pub fn lookup(name: &str) -> Option<&'static Operation> {
    OPERATIONS.iter().find(|o| o.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchy_is_well_formed() {
        for o in OPERATIONS {
            assert_eq!(OPERATIONS.iter().filter(|p| p.name == o.name).count(), 1, "{} listed twice", o.name);
            if let Some(parent) = o.parent {
                assert!(lookup(parent).is_some(), "{}: unknown parent {parent}", o.name);
            }
            assert!(Operations::default().ancestors(o.name).count() < 8, "{}: the hierarchy has a cycle", o.name);
        }
        assert_eq!(Operations::default().ancestors("file_delete").collect::<Vec<_>>(), ["file_delete", "file_system_write", "file_access"]);
    }
}

/// The operations of one workspace: the catalogue plus the project's own from `symbiont.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Operations {
    /// Project operations: name and parent.
    custom: Vec<(String, Option<String>)>,
}

impl Operations {
    pub fn new(custom: &std::collections::BTreeMap<String, CustomOperation>) -> Self {
        Operations { custom: custom.iter().map(|(name, op)| (name.clone(), op.parent.clone())).collect() }
    }

    pub fn is_known(&self, name: &str) -> bool {
        lookup(name).is_some() || self.custom.iter().any(|(n, _)| n == name)
    }

    fn parent<'a>(&'a self, name: &str) -> Option<&'a str> {
        match lookup(name) {
            Some(op) => op.parent,
            None => self.custom.iter().find(|(n, _)| n == name).and_then(|(_, p)| p.as_deref()),
        }
    }

    /// `name` and the operations above it, narrowest first. The walk is bounded, so a cycle in
    /// project operations cannot hang it.
    pub fn ancestors<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        let mut next = Some(name);
        let mut steps = 0;
        std::iter::from_fn(move || {
            let current = next?;
            steps += 1;
            next = if steps > 32 { None } else { self.parent(current) };
            Some(current)
        })
    }

    /// Every known operation name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        OPERATIONS.iter().map(|o| o.name).chain(self.custom.iter().map(|(n, _)| n.as_str()))
    }
}

/// An operation a workspace declares in `symbiont.toml` (`[operations.NAME]`), beside the
/// catalogue's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomOperation {
    #[serde(default)]
    pub description: String,
    pub parent: Option<String>,
}

//! Which capabilities generated code can exercise, and through which SDK call: the table every
//! template reads. A capability not here (`analyze`, `invoke_tool`, …) has no SDK call: the agent
//! declares it, and no function is generated for it.

use serde::Serialize;

/// One thing an agent can do through its broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SdkUse {
    /// The generated function's name in Python and Rust (templates pick their branch by it).
    pub function: &'static str,
    /// Its name in JavaScript and TypeScript.
    pub camel: &'static str,
    /// The operations this call performs, as the broker decides them (`docs/broker-protocol.md`),
    /// and those above them in the catalogue, which cover them (`network_access` covers
    /// `https_request`). Only these: `web_request` covers no request the broker decides, so an
    /// agent allowed it alone would be denied every call.
    pub operations: &'static [&'static str],
    /// The broker op it sends (`docs/broker-protocol.md`): what a fake broker denies in its tests.
    pub broker_op: &'static str,
    /// The input field the generated entry point reads to call it (`{"fetch": URL}`).
    pub input: &'static str,
    pub summary: &'static str,
}

pub static SDK_USES: &[SdkUse] = &[
    SdkUse {
        function: "fetch_url",
        broker_op: "http",
        camel: "fetchUrl",
        operations: &["https_request", "http_request", "network_access"],
        input: "fetch",
        summary: "GET a URL through the broker and return its body",
    },
    SdkUse {
        function: "read_file",
        broker_op: "file_read",
        camel: "readFile",
        operations: &["file_read", "file_access"],
        input: "read",
        summary: "read a file of the agent's workspace",
    },
    SdkUse {
        function: "write_file",
        broker_op: "file_write",
        camel: "writeFile",
        operations: &["file_system_write"],
        input: "write",
        summary: "write a file of the agent's workspace",
    },
    SdkUse {
        function: "read_env",
        broker_op: "env_get",
        camel: "readEnv",
        operations: &["env_access"],
        input: "env",
        summary: "read an environment variable the run declares",
    },
    SdkUse {
        function: "read_secret",
        broker_op: "secret_get",
        camel: "readSecret",
        operations: &["secret_access"],
        input: "secret",
        summary: "read a secret by name",
    },
    SdkUse {
        function: "send_message",
        broker_op: "send_message",
        camel: "sendMessage",
        operations: &["send_message"],
        input: "send",
        summary: "send a message to another agent",
    },
    SdkUse {
        function: "receive_message",
        broker_op: "receive_message",
        camel: "receiveMessage",
        operations: &["receive_message"],
        input: "receive",
        summary: "wait for a message from another agent",
    },
];

/// The SDK call that exercises `capability`, if any.
pub fn sdk_use(capability: &str) -> Option<&'static SdkUse> {
    SDK_USES.iter().find(|u| u.operations.contains(&capability))
}

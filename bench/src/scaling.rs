//! The `parse` benchmark's scaling case: parse and analysis of one file of N agents and of one of
//! 4N, each from a fresh host. Analysis linear in a file's items takes the same time per agent at
//! both sizes; the ratio of the two is what the RESULT line reports (`agents_scaling`).

use std::{path::PathBuf, sync::Arc, time::Duration};

/// One size's measurement.
pub struct Size {
    pub agents: usize,
    pub bytes: usize,
    pub best: Duration,
}

impl Size {
    pub fn per_agent(&self) -> Duration {
        self.best / self.agents.max(1) as u32
    }
}

/// A file of `n` agents as people write them: capabilities, an applied policy, an inline policy
/// with a guard, settings and a body; one top-level policy they all apply.
pub fn agents_file(n: usize) -> String {
    let mut text = String::from("policy shared { deny: [\"network_access\"] }\n\n");
    for i in 0..n {
        text.push_str(&format!(
            "agent agent_{i}(input: String) -> String {{\n    capabilities = [\"file_read\", \"llm_call\"]\n    policies = [shared]\n\n    \
             policy own_{i} {{\n        allow: [\"file_read\"] if user.clearance >= \"developer\"\n        allow: [\"llm_call\"]\n    }}\n\n    \
             with sandbox = \"Tier1\", timeout = 30s {{\n        return summarize(input);\n    }}\n}}\n\n"
        ));
    }
    text
}

/// The best of `iters` timed runs (after one warm-up) of parse + analysis of one file of `agents`
/// agents.
pub fn measure(agents: usize, iters: usize) -> Size {
    let text: Arc<str> = Arc::from(agents_file(agents));
    let files = [(PathBuf::from("agents.sym"), text.clone())];
    let stage = crate::measure("agents", iters, || crate::analyse_all(&files));
    Size { agents, bytes: text.len(), best: stage.best() }
}

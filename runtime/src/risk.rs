//! Risk assessment: a score from what the agent may do and what its code does, mapped to the
//! isolation tier it needs (`docs/runtime.md`, "Risk assessment").
//!
//! The score adds the weight of each operation the agent's effective policy allows (or
//! conditionally allows), of each operation its code performs (the code analysis's findings,
//! whether allowed or not), and of its data classification. 0–29 → Tier 1, 30–59 → Tier 2,
//! 60 and more → Tier 3. The `.sym`'s tier is a minimum; `--tier` may raise it, never lower it.

use crate::config::Tier;

/// The weight of an operation family: what an agent could do with it if its code were hostile.
pub const OPERATION_WEIGHTS: &[(&str, u32)] = &[
    ("execute_code", 30),
    ("spawn_process", 30),
    ("dynamic_code", 25),
    ("spawn_agent", 20),
    ("modify_policy", 40),
    ("network_access", 15),
    ("socket_connect", 20),
    ("file_system_write", 10),
    ("file_delete", 10),
    ("secret_access", 15),
    ("env_access", 5),
    ("send_message", 5),
    ("file_read", 3),
];

/// The weight of a data classification (`conditions: { data_classification: … }`), by name.
pub const CLASSIFICATION_WEIGHTS: &[(&str, u32)] =
    &[("public", 0), ("internal", 5), ("confidential", 20), ("restricted", 35), ("secret", 40), ("top_secret", 50)];

pub const TIER2_AT: u32 = 30;
pub const TIER3_AT: u32 = 60;

/// What the assessment reads.
#[derive(Debug, Clone, Default)]
pub struct RiskInputs {
    /// Operations the effective policy allows, always or under a guard.
    pub allowed: Vec<String>,
    /// Operations the agent's code performs (code analysis findings), each once.
    pub performed: Vec<String>,
    pub classification: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub score: u32,
    pub tier: Tier,
    /// Each contribution to the score, for `symbiont run --explain` and the audit entry.
    pub factors: Vec<(String, u32)>,
}

fn weight(op: &str) -> u32 {
    OPERATION_WEIGHTS.iter().find(|(name, _)| *name == op).map_or(0, |(_, w)| *w)
}

pub fn assess(inputs: &RiskInputs) -> Assessment {
    let mut factors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for op in &inputs.allowed {
        if seen.insert(("allowed", op.as_str())) && weight(op) > 0 {
            factors.push((format!("policy allows {op}"), weight(op)));
        }
    }
    for op in &inputs.performed {
        if seen.insert(("performed", op.as_str())) && weight(op) > 0 {
            // Code that performs an operation is riskier than a permission nobody uses.
            factors.push((format!("code performs {op}"), weight(op)));
        }
    }
    if let Some(class) = &inputs.classification {
        let w = CLASSIFICATION_WEIGHTS.iter().find(|(n, _)| n.eq_ignore_ascii_case(class)).map_or(20, |(_, w)| *w);
        if w > 0 {
            factors.push((format!("data classification {class}"), w));
        }
    }
    let score = factors.iter().map(|(_, w)| w).sum();
    let tier = if score >= TIER3_AT {
        Tier::MicroVm
    } else if score >= TIER2_AT {
        Tier::GVisor
    } else {
        Tier::Docker
    };
    Assessment { score, tier, factors }
}

/// The tier a run uses: the assessment's, raised to the `.sym`'s minimum, raised to the
/// command line's request. Nothing lowers it.
pub fn choose_tier(assessed: Tier, declared_minimum: Option<Tier>, requested: Option<Tier>) -> Tier {
    [Some(assessed), declared_minimum, requested].into_iter().flatten().max().unwrap_or(Tier::Docker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(allowed: &[&str], performed: &[&str], class: Option<&str>) -> RiskInputs {
        RiskInputs {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
            performed: performed.iter().map(|s| s.to_string()).collect(),
            classification: class.map(str::to_string),
        }
    }

    #[test]
    fn scores_map_to_tiers() {
        assert_eq!(assess(&inputs(&["read", "analyze"], &[], None)).tier, Tier::Docker);
        let net = assess(&inputs(&["network_access"], &["network_access"], None));
        assert_eq!((net.score, net.tier), (30, Tier::GVisor));
        let exec = assess(&inputs(&["spawn_process", "network_access"], &["spawn_process"], Some("confidential")));
        assert_eq!(exec.tier, Tier::MicroVm, "{exec:?}");
        // Each operation counts once per kind, however often the code performs it.
        let repeated = assess(&inputs(&[], &["file_read", "file_read", "file_read"], None));
        assert_eq!(repeated.score, 3);
    }

    #[test]
    fn nothing_lowers_the_tier() {
        assert_eq!(choose_tier(Tier::GVisor, Some(Tier::Docker), Some(Tier::Docker)), Tier::GVisor);
        assert_eq!(choose_tier(Tier::Docker, Some(Tier::GVisor), None), Tier::GVisor);
        assert_eq!(choose_tier(Tier::Docker, None, Some(Tier::MicroVm)), Tier::MicroVm);
    }
}

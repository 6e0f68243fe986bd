//! `symbiont new agent`: the agent's `.sym` file and its code, from its effective policy.
//!
//! The generator first writes the agent as asked (its capabilities and applied policies, no
//! inline policy) and asks the policy engine what each capability's verdict is in the workspace:
//! one an unconditional deny covers refuses everything, naming the rule; one nothing allows gets
//! an allow in the agent's own policy; the rest are allowed already (perhaps under a guard, which
//! the code's comments repeat). Then it writes the agent again with that policy and checks that
//! every capability is now allowed before rendering the code.

use symbiont_policy::{
    effective::{EffectivePolicy, StaticVerdict},
    model::RuleKind,
};

use crate::templates::{AgentContext, CapabilityContext, DeniedContext, RuleContext};
use crate::{capability, check_name, templates, GeneratedFile, Language, Refusal, Workspace};

/// What `symbiont new agent` was asked for.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub language: Language,
    /// Named policies to apply (`policies = [...]`).
    pub policies: Vec<String>,
    /// Operations the agent declares (`capabilities = [...]`).
    pub capabilities: Vec<String>,
    /// The isolation tier (1 to 3); `None` lets the runtime choose by risk.
    pub tier: Option<u8>,
}

/// The files of a new agent, or why none.
pub fn new_agent(ws: &Workspace, request: &NewAgent) -> Result<Vec<GeneratedFile>, Refusal> {
    let context = plan(ws, request)?;
    let files = templates::render_agent(&context)?;
    Ok(files)
}

/// The context of a new agent: its capabilities judged by its effective policy.
pub fn plan(ws: &Workspace, request: &NewAgent) -> Result<AgentContext, Refusal> {
    check_name("an agent's name", &request.name)?;
    let before = ws.universe(None);
    if let Some(agent) = before.agent(&request.name) {
        return Err(Refusal::AgentExists { name: request.name.clone(), at: agent.loc.to_string() });
    }
    for policy in &request.policies {
        if before.policy(policy).is_none() {
            let suggestion = symbiont_syntax::suggest::closest(policy, before.policy_names()).map(str::to_string);
            return Err(Refusal::UnknownPolicy { name: policy.clone(), suggestion });
        }
    }
    for capability in &request.capabilities {
        crate::add::check_operation(ws, capability)?;
    }
    let mut context = skeleton(request);
    let sym_path = format!("{}/{}.sym", context.dir, request.name);
    // As asked: which capabilities a deny forbids, which nothing allows.
    let effective = effective_with(ws, &sym_path, &templates::render_sym(&context)?, &request.name)?;
    for capability in &request.capabilities {
        match effective.static_verdict(capability) {
            StaticVerdict::DeniedBy(i) => {
                let rule = &effective.rules[i].rule;
                return Err(Refusal::Denied { capability: capability.clone(), rule: rule.text.to_string(), at: location(&rule.loc) });
            }
            StaticVerdict::NeverAllowed => context.inline_allow.push(capability.clone()),
            StaticVerdict::Conditional | StaticVerdict::Allowed => {}
        }
    }
    // With the agent's own allows: every capability must now be allowed.
    let effective = effective_with(ws, &sym_path, &templates::render_sym(&context)?, &request.name)?;
    judge_all(&mut context, &effective, &request.capabilities)?;
    Ok(context)
}

/// Fills in what the templates say of the policy: each capability's verdict and the rules that
/// allow it (every one must be allowed), and what the agent may never do.
pub(crate) fn judge_all(context: &mut AgentContext, effective: &EffectivePolicy, capabilities: &[String]) -> Result<(), Refusal> {
    context.capabilities = capabilities.iter().map(|c| judge(effective, c)).collect::<Result<_, _>>()?;
    context.denied = effective
        .rules
        .iter()
        .filter(|r| r.rule.kind == RuleKind::Deny && r.rule.is_unconditional())
        .flat_map(|r| {
            let by = rule_context(effective, r);
            r.rule.ops.iter().map(move |op| DeniedContext { operation: op.name.clone(), by: by.clone() })
        })
        .collect();
    Ok(())
}

/// The context before any policy is consulted.
pub(crate) fn skeleton(request: &NewAgent) -> AgentContext {
    let mut functions: Vec<&'static capability::SdkUse> = Vec::new();
    let mut without_sdk = Vec::new();
    for capability in &request.capabilities {
        match capability::sdk_use(capability) {
            Some(sdk) if !functions.contains(&sdk) => functions.push(sdk),
            Some(_) => {}
            None => without_sdk.push(capability.clone()),
        }
    }
    functions.sort_by_key(|f| capability::SDK_USES.iter().position(|u| u == *f));
    let name = &request.name;
    let implementation = match request.language {
        Language::Python => vec![format!("{name}.py")],
        Language::JavaScript => vec![format!("{name}.js")],
        // The entry point is what runs; the sources are listed too, so `check` reads them.
        Language::TypeScript => vec![format!("dist/{name}.js"), format!("src/{name}.ts")],
        Language::Rust => vec![format!("target/release/{name}"), "src/main.rs".into(), "src/lib.rs".into()],
    };
    AgentContext {
        name: name.clone(),
        language: request.language,
        dir: format!("agents/{name}"),
        root: "../..".into(),
        tier: request.tier,
        policies: request.policies.clone(),
        capabilities: Vec::new(),
        functions,
        without_sdk,
        denied: Vec::new(),
        inline_allow: Vec::new(),
        implementation,
    }
}

fn effective_with(ws: &Workspace, path: &str, sym: &str, agent: &str) -> Result<EffectivePolicy, Refusal> {
    ws.universe(Some((path, sym))).effective(Some(agent)).map_err(|e| Refusal::Internal(e.to_string()))
}

fn judge(effective: &EffectivePolicy, operation: &str) -> Result<CapabilityContext, Refusal> {
    let verdict = match effective.static_verdict(operation) {
        StaticVerdict::Allowed => "allowed",
        StaticVerdict::Conditional => "conditional",
        other => return Err(Refusal::Internal(format!("`{operation}` is still not allowed with the agent's own policy ({other:?})"))),
    };
    let covering: Vec<&str> = effective.operations.ancestors(operation).collect();
    let covers = |r: &&symbiont_policy::effective::EffectiveRule| r.rule.ops.iter().any(|o| covering.contains(&o.name.as_str()));
    let allowed_by =
        effective.rules.iter().filter(|r| r.rule.kind == RuleKind::Allow).filter(covers).map(|r| rule_context(effective, r)).collect();
    let guarded = |r: &&symbiont_policy::effective::EffectiveRule| {
        matches!(r.rule.kind, RuleKind::Allow | RuleKind::Deny) && !r.rule.is_unconditional()
    };
    let conditions = effective.rules.iter().filter(covers).filter(guarded).map(|r| rule_context(effective, r)).collect();
    Ok(CapabilityContext { operation: operation.to_string(), verdict, allowed_by, conditions, sdk: capability::sdk_use(operation) })
}

fn rule_context(effective: &EffectivePolicy, rule: &symbiont_policy::effective::EffectiveRule) -> RuleContext {
    let policy = effective.policies[rule.policy].name.clone();
    RuleContext { text: rule.rule.text.to_string(), at: location(&rule.rule.loc), policy }
}

/// `FILE:LINE`, as an editor opens it.
fn location(loc: &symbiont_policy::model::SourceLoc) -> String {
    format!("{}:{}", loc.file, loc.line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> Workspace {
        let policies = "policy baseline {\n    deny: [\"spawn_process\"]\n}\n\npolicy readers {\n    allow: [\"file_read\"]\n}\n";
        let config = symbiont_policy::config::parse("[policy]\nbase = \"baseline\"\n").unwrap();
        Workspace { sources: vec![("policies.sym".into(), policies.into())], config }
    }

    fn request(capabilities: &[&str]) -> NewAgent {
        NewAgent {
            name: "notes".into(),
            language: Language::Python,
            policies: vec!["readers".into()],
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            tier: Some(1),
        }
    }

    #[test]
    fn a_denied_capability_generates_nothing_and_names_the_rule() {
        let refusal = new_agent(&workspace(), &request(&["file_read", "spawn_process"])).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Denied { capability: "spawn_process".into(), rule: "deny: [\"spawn_process\"]".into(), at: "policies.sym:2".into() }
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let ws = workspace();
        let refuse = |edit: &dyn Fn(&mut NewAgent)| {
            let mut request = request(&["file_read"]);
            edit(&mut request);
            new_agent(&ws, &request).unwrap_err().to_string()
        };
        assert_eq!(refuse(&|r| r.capabilities.push("file_reed".into())), "unknown operation `file_reed` (did you mean `file_read`?)");
        assert_eq!(refuse(&|r| r.policies = vec!["reader".into()]), "no policy `reader` in this workspace (did you mean `readers`?)");
        assert_eq!(
            refuse(&|r| r.name = "Notes".into()),
            "`Notes` cannot be an agent's name: use lower-case letters, digits and `_`, starting with a letter (at most 64)"
        );
        let mut with_agent = ws.clone();
        with_agent.sources.push(("a.sym".into(), "agent notes(x: String) -> String {\n}\n".into()));
        assert_eq!(new_agent(&with_agent, &request(&[])).unwrap_err().to_string(), "an agent `notes` exists already at a.sym:1:7");
    }

    #[test]
    fn what_nothing_allows_the_agent_allows_itself() {
        let context = plan(&workspace(), &request(&["file_read", "file_system_write"])).unwrap();
        assert_eq!(context.inline_allow, ["file_system_write"]);
        assert_eq!(context.capabilities[0].allowed_by[0].at, "policies.sym:6");
    }
}

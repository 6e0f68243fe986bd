//! Workspace-wide name resolution: duplicate definitions, unresolved references, `extends` cycles.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use symbiont_syntax::TextRange;

use crate::{
    diagnostics::{self as rules, Diagnostic, FileEdit},
    inputs::{config, Db, SourceFile, Workspace},
    items::{DefKind, RefContext},
    summary::{file_items, file_symbols},
};

/// Every workspace-level name, by namespace, with the files defining it (in path order), and the
/// `extends` graph of top-level policies. Holds no ranges, so edits that rename nothing keep it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceIndex {
    /// By namespace, then name: a lookup by a borrowed name allocates nothing.
    pub defs: BTreeMap<DefKind, BTreeMap<String, Vec<SourceFile>>>,
    pub extends: BTreeMap<String, Vec<String>>,
}

impl WorkspaceIndex {
    pub fn lookup(&self, kind: DefKind, name: &str) -> &[SourceFile] {
        self.defs.get(&kind).and_then(|names| names.get(name)).map_or(&[], Vec::as_slice)
    }

    pub fn names(&self, kind: DefKind) -> impl Iterator<Item = &str> {
        self.defs.get(&kind).into_iter().flat_map(|names| names.keys().map(String::as_str))
    }

    /// The policies on the `extends` cycle through `policy`, starting and ending with it.
    pub fn extends_cycle(&self, policy: &str) -> Option<Vec<String>> {
        // Most policies extend nothing: no cycle goes through them.
        if !self.extends.contains_key(policy) {
            return None;
        }
        // Depth-first search with an explicit stack: no input can overflow it.
        let mut stack: Vec<(String, usize)> = vec![(policy.to_string(), 0)];
        let mut on_path: Vec<String> = vec![policy.to_string()];
        let mut visited = BTreeSet::new();
        while let Some((node, next_child)) = stack.pop() {
            let parents = self.extends.get(&node).map_or(&[][..], Vec::as_slice);
            if next_child < parents.len() {
                stack.push((node, next_child + 1));
                let parent = &parents[next_child];
                if parent == policy {
                    let mut cycle = on_path.clone();
                    cycle.push(policy.to_string());
                    return Some(cycle);
                }
                if visited.insert(parent.clone()) {
                    on_path.push(parent.clone());
                    stack.push((parent.clone(), 0));
                }
            } else {
                on_path.pop();
            }
        }
        None
    }
}

#[salsa::tracked(returns(ref))]
pub fn workspace_index(db: &dyn Db, ws: Workspace) -> WorkspaceIndex {
    let mut index = WorkspaceIndex::default();
    for &file in ws.files(db) {
        let symbols = file_symbols(db, file);
        for (kind, name) in &symbols.defs {
            index.defs.entry(*kind).or_default().entry(name.clone()).or_default().push(file);
        }
        for (child, parent) in &symbols.extends {
            index.extends.entry(child.clone()).or_default().push(parent.clone());
        }
    }
    index
}

#[salsa::tracked(returns(ref))]
pub fn resolve_diagnostics(db: &dyn Db, ws: Workspace, file: SourceFile) -> Vec<Diagnostic> {
    let index = workspace_index(db, ws);
    let items = file_items(db, file);
    let mut diagnostics = Vec::new();

    // The first definition of each name in this file, by position: one pass, not one per name.
    let mut firsts: HashMap<(DefKind, &str), usize> = HashMap::with_capacity(items.defs.len());
    for (position, def) in items.defs.iter().enumerate() {
        firsts.entry((def.kind, def.name.as_str())).or_insert(position);
    }
    for (position, def) in items.defs.iter().enumerate() {
        let definers = index.lookup(def.kind, &def.name);
        // The first definition (in path order, then position) is the original; later ones clash.
        let first_position = firsts[&(def.kind, def.name.as_str())];
        let first_file = definers.first() == Some(&file);
        if first_file && first_position == position {
            continue;
        }
        let (original_file, original) = if first_file {
            (file, items.defs.get(first_position))
        } else {
            let Some(&other) = definers.first() else { continue };
            (other, file_items(db, other).defs.iter().find(|d| d.kind == def.kind && d.name == def.name))
        };
        let Some(original) = original else { continue };
        diagnostics.push(
            Diagnostic::new(
                &rules::DUPLICATE_DEFINITION,
                def.name_range,
                format!("{} `{}` is defined more than once", def.kind.as_str(), def.name),
            )
            .with_related(original_file.path(db).clone(), original.name_range, "first defined here"),
        );
    }

    for reference in &items.references {
        if !reference.context.must_resolve() || !index.lookup(reference.namespace, &reference.name).is_empty() {
            continue;
        }
        let what = reference.namespace.as_str();
        let message = match &reference.context {
            RefContext::Extends { child } => {
                format!("policy `{child}` extends `{}`, but no top-level policy has that name", reference.name)
            }
            RefContext::AppliedPolicy { agent } => {
                format!("agent `{agent}` applies policy `{}`, but no top-level policy has that name", reference.name)
            }
            RefContext::AgentTarget { owner } => format!("this {owner} targets agent `{}`, but no agent has that name", reference.name),
            RefContext::TypeUse | RefContext::Call => continue,
        };
        let mut diagnostic = Diagnostic::new(&rules::UNRESOLVED_REFERENCE, reference.range, message);
        if let Some(best) = symbiont_syntax::suggest::closest(&reference.name, index.names(reference.namespace)) {
            let new_text = if reference.quoted { format!("\"{best}\"") } else { best.to_string() };
            diagnostic = diagnostic
                .with_fix(format!("Replace with {what} `{best}`"), vec![FileEdit::new(file.path(db).clone(), reference.range, new_text)]);
        }
        diagnostics.push(diagnostic);
    }

    let mut reported_cycle_at = BTreeSet::new();
    for def in items.defs.iter().filter(|d| d.kind == DefKind::Policy) {
        if !reported_cycle_at.insert(def.name.as_str()) {
            continue;
        }
        let Some(cycle) = index.extends_cycle(&def.name) else { continue };
        let mut diagnostic =
            Diagnostic::new(&rules::EXTENDS_CYCLE, def.name_range, format!("policy `{}` extends itself: {}", def.name, cycle.join(" → ")));
        for member in cycle.iter().skip(1).take(cycle.len().saturating_sub(2)) {
            for &other in index.lookup(DefKind::Policy, member) {
                if let Some(d) = file_items(db, other).defs.iter().find(|d| d.kind == DefKind::Policy && &d.name == member) {
                    diagnostic = diagnostic.with_related(other.path(db).clone(), d.name_range, format!("`{member}` is on the cycle"));
                }
            }
        }
        diagnostics.push(diagnostic);
    }

    diagnostics
}

/// Diagnostics of `symbiont.toml`: parse errors and an unknown base policy.
#[salsa::tracked(returns(ref))]
pub fn config_diagnostics(db: &dyn Db, ws: Workspace) -> Vec<Diagnostic> {
    let (config, error) = config(db, ws);
    let mut diagnostics = Vec::new();
    if let Some(error) = error {
        diagnostics.push(Diagnostic::new(&rules::INVALID_CONFIG, error.range, format!("invalid `symbiont.toml`: {}", error.message)));
    }
    if let Some(error) = &crate::code::code_rules(db, ws).error {
        diagnostics.push(Diagnostic::new(&rules::INVALID_CONFIG, TextRange::empty(0.into()), format!("invalid `symbiont.toml`: {error}")));
    }
    if let Some((base, range)) = &config.base_policy {
        let index = workspace_index(db, ws);
        if index.lookup(DefKind::Policy, base).is_empty() {
            let range: TextRange = *range;
            diagnostics.push(Diagnostic::new(
                &rules::UNRESOLVED_REFERENCE,
                range,
                format!("the base policy `{base}` named in `symbiont.toml` is not defined in the workspace"),
            ));
        }
    }
    // A context for an agent that does not exist would give no run anything: a misspelt name.
    let index = workspace_index(db, ws);
    for (agent, (_, range)) in &config.run.agents {
        if !index.lookup(DefKind::Agent, agent).is_empty() {
            continue;
        }
        let mut diagnostic = Diagnostic::new(
            &rules::UNRESOLVED_REFERENCE,
            *range,
            format!("`[run.agents.{agent}]` in `symbiont.toml` gives a context to agent `{agent}`, which is not defined in the workspace"),
        );
        if let (Some(best), Some((path, _))) = (symbiont_syntax::suggest::closest(agent, index.names(DefKind::Agent)), ws.config_file(db)) {
            // Not safe unreviewed: it gives another agent the context, clearances included.
            diagnostic.fix = Some(rules::Fix {
                title: format!("Replace with agent `{best}`"),
                edits: vec![FileEdit::new(path.clone(), *range, best.to_string())],
                safe: false,
            });
        }
        diagnostics.push(diagnostic);
    }
    diagnostics
}

//! `symbiont audit backup` and `symbiont audit verify s3://…`: WORM backups of an audit log to
//! S3 with Object Lock, through `symbiont_audit::backup`. The remote copy is verified by laying it
//! out as a log directory and running the same `verify_log` as for a local log.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::json;
use symbiont_audit::{
    backup::{self, BackupOptions, Target},
    s3::Client,
    verify::{self, VerifyOptions},
};

use crate::{
    audit_report::{load_checkpoint, load_keys, out, render_report},
    Exit,
};

#[derive(Debug)]
pub struct Backup {
    pub log: PathBuf,
    pub to: String,
    pub endpoint: Option<String>,
    pub retain: Duration,
    pub include_active: bool,
    pub json: bool,
}

#[derive(Debug)]
pub struct VerifyRemote {
    pub target: String,
    pub endpoint: Option<String>,
    pub keys: Vec<PathBuf>,
    pub checkpoint: Option<PathBuf>,
    pub json: bool,
}

/// The S3 endpoint: `--endpoint`, else `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`.
fn endpoint(given: Option<&str>) -> Result<String, String> {
    let from_env = || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().find_map(|v| std::env::var(v).ok().filter(|v| !v.is_empty()));
    Ok(given.map(str::to_string).or_else(from_env).ok_or("no S3 endpoint: give '--endpoint URL' (or set AWS_ENDPOINT_URL)")?)
}

/// The target and a client for its bucket at [`endpoint`]; credentials from the environment.
fn connect(target: &str, endpoint: &str) -> Result<(Target, Client), String> {
    let target = Target::parse(target).map_err(|e| e.to_string())?;
    let client = Client::from_env(endpoint, &target.bucket).map_err(|e| e.to_string())?;
    Ok((target, client))
}

/// The workspace whose agents wrote the log at `log`: the nearest ancestor with a `symbiont.toml`
/// (as `symbiont run` finds it), read as a run reads it. A workspace that cannot be read, or has
/// errors, is an error: what its agents' conditions ask of a backup cannot be known.
pub fn log_workspace(log: &Path) -> Result<crate::compose::Workspace, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let root = crate::compose::workspace_root(log, &cwd);
    crate::compose::Workspace::load(&root)
        .map_err(|refused| format!("cannot tell what the conditions of {}'s agents ask of a backup: {}", root.display(), refused.message))
}

/// Refuses `endpoint` when an agent of `workspace` is geographically restricted and it is not an
/// S3 endpoint of the regions the agent is restricted to (`docs/policy-semantics.md`,
/// "Conditions the runtime enforces").
fn check_regions(workspace: &crate::compose::Workspace, endpoint: &str) -> Result<(), String> {
    for agent in workspace.universe.agents() {
        let Ok(effective) = workspace.universe.effective(Some(&agent.name)) else { continue };
        let Some(restriction) = effective.geography() else { continue };
        restriction.admits_endpoint(endpoint).map_err(|why| {
            let by: Vec<String> = restriction.rules.iter().map(|(_, at)| at.to_string()).collect();
            format!("refusing to back up the audit entries of agent `{}` to {endpoint}: {why}; restricted at {}", agent.name, by.join(", "))
        })?;
    }
    Ok(())
}

pub fn backup(args: &Backup) -> Exit {
    let endpoint = match endpoint(args.endpoint.as_deref()) {
        Ok(endpoint) => endpoint,
        Err(e) => return Exit::failure(e),
    };
    let checked = log_workspace(&args.log).and_then(|workspace| {
        check_regions(&workspace, &endpoint)?;
        crate::backup_retention::check_log(&workspace, &args.log, args.retain)
    });
    match checked {
        Ok(notes) => notes.iter().for_each(|note| eprintln!("note: {note}")),
        Err(e) => return Exit::failure(e),
    }
    let (target, client) = match connect(&args.to, &endpoint) {
        Ok(c) => c,
        Err(e) => return Exit::failure(e),
    };
    let options = BackupOptions { retain: args.retain, include_active: args.include_active };
    let report = match backup::backup(&args.log, &client, &target, &options) {
        Ok(report) => report,
        Err(symbiont_audit::Error::Corrupt(finding)) => {
            crate::print_error(format!("nothing more was backed up: {finding}"));
            return Exit::Problems;
        }
        Err(e) => return Exit::failure(e),
    };
    let url = target.url("");
    let text = if args.json {
        let value = json!({
            "target": url,
            "uploaded": report.uploaded,
            "unchanged": report.unchanged,
            "mode": backup::LOCK_MODE,
            "retain_until": report.retain_until,
            "backed_up_entries": report.backed_up,
            "local_entries": report.local_entries,
            "checkpoint": report.checkpoint,
        });
        format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default())
    } else {
        let mut text = String::new();
        for name in &report.uploaded {
            text.push_str(&format!("uploaded {}\n", target.url(name)));
        }
        let lock = if report.uploaded.is_empty() {
            String::new()
        } else {
            format!(", locked in {} mode until {}", backup::LOCK_MODE, report.retain_until)
        };
        text.push_str(&format!("backed up to {url}: {} uploaded{lock}, {} already there\n", report.uploaded.len(), report.unchanged));
        let checkpoint = report.checkpoint.map_or("no checkpoint yet".to_string(), |size| format!("latest checkpoint {size}"));
        text.push_str(&format!("the backup holds entries 0..{} ({checkpoint}) of the log's {}\n", report.backed_up, report.local_entries));
        if report.backed_up < report.local_entries {
            text.push_str(&format!(
                "note: entries {}..{} are in the active segment: they are backed up once it is sealed{}\n",
                report.backed_up,
                report.local_entries,
                if args.include_active {
                    " or covered by a checkpoint"
                } else {
                    " (or, up to the latest checkpoint, with --include-active)"
                }
            ));
        }
        text
    };
    out(&text)
}

pub fn verify_remote(args: &VerifyRemote) -> Exit {
    let (target, client) = match endpoint(args.endpoint.as_deref()).and_then(|endpoint| connect(&args.target, &endpoint)) {
        Ok(c) => c,
        Err(e) => return Exit::failure(e),
    };
    let trusted_keys = match load_keys(&args.keys) {
        Ok(keys) => keys,
        Err(e) => return Exit::failure(e),
    };
    let saved_checkpoint = match args.checkpoint.as_deref().map(load_checkpoint).transpose() {
        Ok(cp) => cp,
        Err(e) => return Exit::failure(e),
    };
    let download = match backup::download(&client, &target) {
        Ok(d) => d,
        Err(e) => return Exit::failure(e),
    };
    let mut report =
        match verify::verify_log(download.dir.path(), &VerifyOptions { trusted_keys, saved_checkpoint, ..VerifyOptions::default() }) {
            Ok(r) => r,
            Err(e) => return Exit::failure(download.remote_text(&e.to_string())),
        };
    // Name the objects, not the temporary files they were laid out in.
    for finding in report.finding.iter_mut().chain(report.torn_tail.iter_mut()) {
        *finding = download.remote_finding(finding);
    }
    let mut warnings = download.warnings.clone();
    warnings.extend(report.warnings.iter().map(|w| download.remote_text(w)));
    report.warnings = warnings;
    if report.finding.is_none() {
        report.finding = download.problems.first().cloned();
    }
    let exit = out(&render_report(&report, args.json));
    if exit != Exit::Clean {
        return exit;
    }
    if report.is_valid() {
        Exit::Clean
    } else {
        Exit::Problems
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::compose::Workspace;

    fn workspace(config: &str, sym: &str) -> Workspace {
        let config = symbiont_policy::config::parse(config).unwrap();
        Workspace { root: PathBuf::from("."), universe: symbiont_policy::load([("a.sym", sym)], config), schedules: Vec::new() }
    }

    const REGIONS: &str = "[regions.us]\ns3_endpoints = [\"https://s3.us-east-1.amazonaws.com\"]\n\
                           [regions.eu]\ns3_endpoints = [\"https://s3.eu-west-1.amazonaws.com\"]\n";

    /// With an agent restricted to a region, only that region's endpoints (in any spelling) take
    /// the backup; the refusal names the agent, the endpoint and where the restriction is written.
    #[test]
    fn a_restricted_agents_entries_stay_in_its_regions() {
        let ws = workspace(
            REGIONS,
            "agent open { policy p { allow: file_read } }\n\
             agent kept {\n    policy p {\n        conditions: { geographic_restriction: \"us\" }\n    }\n}\n",
        );
        assert_eq!(super::check_regions(&ws, "https://S3.us-east-1.amazonaws.com/"), Ok(()));
        let why = super::check_regions(&ws, "https://s3.eu-west-1.amazonaws.com").unwrap_err();
        assert!(why.contains("agent `kept`") && why.contains("not an S3 endpoint of the regions us") && why.contains("a.sym:4:9"), "{why}");
        assert!(super::check_regions(&ws, "http://127.0.0.1:8333").is_err());
        // Nobody restricted: any endpoint.
        let free = workspace(REGIONS, "agent open { policy p { allow: file_read } }\n");
        assert_eq!(super::check_regions(&free, "http://127.0.0.1:8333"), Ok(()));
    }
}

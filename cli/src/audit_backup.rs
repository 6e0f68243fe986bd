//! `symbiont audit backup` and `symbiont audit verify s3://…`: WORM backups of an audit log to
//! S3 with Object Lock, through `symbiont_audit::backup`. The remote copy is verified by laying it
//! out as a log directory and running the same `verify_log` as for a local log.

use std::{path::PathBuf, time::Duration};

use serde_json::json;
use symbiont_audit::{
    backup::{self, BackupOptions, Target},
    s3::Client,
    verify::{self, VerifyOptions},
};

use crate::{
    audit::{load_checkpoint, load_keys, out, render_report},
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

/// The target and a client for its bucket: `--endpoint`, else `AWS_ENDPOINT_URL_S3` or
/// `AWS_ENDPOINT_URL`; credentials from the environment.
fn connect(target: &str, endpoint: Option<&str>) -> Result<(Target, Client), String> {
    let target = Target::parse(target).map_err(|e| e.to_string())?;
    let from_env = || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().find_map(|v| std::env::var(v).ok().filter(|v| !v.is_empty()));
    let endpoint =
        endpoint.map(str::to_string).or_else(from_env).ok_or("no S3 endpoint: give '--endpoint URL' (or set AWS_ENDPOINT_URL)")?;
    let client = Client::from_env(&endpoint, &target.bucket).map_err(|e| e.to_string())?;
    Ok((target, client))
}

pub fn backup(args: &Backup) -> Exit {
    let (target, client) = match connect(&args.to, args.endpoint.as_deref()) {
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
    let (target, client) = match connect(&args.target, args.endpoint.as_deref()) {
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

//! What `audit verify` and the backup commands (`audit_backup.rs`) share: reading the keys and
//! checkpoint a verification trusts, rendering its report, writing it out.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde_json::json;
use symbiont_audit::{entry, keys::PublicKey, verify, Checkpoint};

use crate::Exit;

/// Writes `text` to standard output (a closed pipe is not an error).
pub(crate) fn out(text: &str) -> Exit {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Exit::failure(format!("cannot write the output: {e}")),
        _ => Exit::Clean,
    }
}

pub(crate) fn load_keys(paths: &[PathBuf]) -> Result<Vec<PublicKey>, symbiont_audit::Error> {
    paths.iter().map(|p| PublicKey::load(p)).collect()
}

pub(crate) fn load_checkpoint(path: &Path) -> Result<Checkpoint, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(text.trim()).map_err(|e| format!("{}: not a checkpoint: {e}", path.display()))
}

/// A verification report, as `verify` prints it (`--format human|json`).
pub(crate) fn render_report(report: &verify::VerifyReport, json: bool) -> String {
    if json {
        let finding = report.finding.as_ref().map(|f| json!({ "seq": f.seq, "path": f.path, "offset": f.offset, "reason": f.reason }));
        let value = json!({
            "valid": report.is_valid(),
            "origin": report.origin,
            "entries": report.entries,
            "checkpoints": report.checkpoints,
            "root": entry::b64(&report.root),
            "first_bad": finding,
            "torn_tail": report.torn_tail.as_ref().map(|f| json!({ "path": f.path, "offset": f.offset })),
            "warnings": report.warnings,
        });
        format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default())
    } else {
        let mut text = String::new();
        for warning in &report.warnings {
            text.push_str(&format!("warning: {warning}\n"));
        }
        if let Some(torn) = &report.torn_tail {
            text.push_str(&format!("note: {torn}\n"));
        }
        match &report.finding {
            None => text.push_str(&format!(
                "valid: {} entries, {} checkpoints, root {} ({})\n",
                report.entries,
                report.checkpoints,
                entry::b64(&report.root),
                report.origin
            )),
            Some(f) => text.push_str(&format!("INVALID: {f}\n")),
        }
        text
    }
}

//! How `symbiont run` (in its process, or handed to the service) hears that it must stop.

use std::io::Write;

/// Resolves at the first SIGINT (Ctrl-C), SIGTERM (`kill`, a service manager) or SIGHUP (the
/// terminal went away): each stops the run the same way (the agent killed, `killed` audited, the
/// container and staging directory removed, exit 137). Registered before anything is made, so
/// that none of them ends the process by its default action; Tokio never unregisters them, so a
/// second signal during the clean-up is absorbed and the clean-up finishes (it is bounded: the
/// kill, at most 10 s waiting for the agent to end, the removal). SIGKILL cannot be handled: the
/// next run cleans up (`symbiont_runtime::leftovers`).
pub fn stop_signals() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [("SIGINT", SignalKind::interrupt()), ("SIGTERM", SignalKind::terminate()), ("SIGHUP", SignalKind::hangup())];
    let mut streams = Vec::new();
    for (name, kind) in kinds {
        streams.push((name, signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))?));
    }
    Ok(async move {
        let name = std::future::poll_fn(|cx| {
            for (name, stream) in &mut streams {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*name);
                }
            }
            std::task::Poll::Pending
        })
        .await;
        let _ = writeln!(std::io::stderr(), "symbiont: {name}: stopping the agent and cleaning up");
    })
}

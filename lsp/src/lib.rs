//! `symbiont-lsp`: the language server for `.sym`/`.symbi` files and the agent code bound to
//! them. The only crate that knows the Language Server Protocol: everything it answers comes from
//! `symbiont-analysis` (byte offsets, paths), converted here to the protocol's URIs and UTF-16
//! positions.
//!
//! Threads: the protocol runs on tokio (`tower-lsp-server`); one writer thread owns every change
//! to the analysis ([`world`]); one publisher thread pushes diagnostics ([`publish`]); requests
//! compute on snapshots in tokio's blocking pool.

mod convert;
mod publish;
mod run;
mod server;
mod transport;
mod world;

use std::{
    any::Any,
    os::fd::AsFd,
    panic::AssertUnwindSafe,
    task::{Context, Poll},
};

use futures::{future::BoxFuture, FutureExt};
use tower_lsp_server::{
    jsonrpc::{self, Request, Response},
    LspService, Server,
};

pub use server::{RUN_AGENT, VERIFY_AUDIT};

/// Whether the client asked for `shutdown` (before `exit`, the protocol's clean end).
pub(crate) static SHUT_DOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Serves the protocol over stdin/stdout until the client sends `exit` or closes stdin. Returns
/// whether `shutdown` came first: the process should then exit with 0, else with 1.
pub async fn serve_stdio() -> bool {
    let hooks = std::env::var_os("SYMBIONT_LSP_TEST_HOOKS").is_some_and(|v| v == "1");
    // Every frame to the client goes through one channel to one writer: the server's output, the
    // transport's own answers and the diagnostics the publisher thread serialises itself.
    let (frames, to_client) = tokio::sync::mpsc::unbounded_channel();
    let publisher_frames = frames.downgrade();
    let mut builder = LspService::build(move |client| server::Backend::new(client, publisher_frames.clone()));
    if hooks {
        builder = builder
            .custom_method("symbiont/debugPanic", server::Backend::debug_panic)
            .custom_method("symbiont/debugHold", server::Backend::debug_hold);
    }
    let (service, socket) = builder.finish();
    let (to_server, server_input) = tokio::io::duplex(1 << 16);
    let (server_output, from_server) = tokio::io::duplex(1 << 16);
    let input = tokio::spawn(transport::pump_input(tokio::io::stdin(), to_server, frames.clone()));
    let output = tokio::spawn(transport::pump_output(from_server, frames));
    // Straight to the file descriptor: std's stdout is line-buffered and would look for a line
    // break in every frame.
    let stdout = std::io::stdout().as_fd().try_clone_to_owned().map(std::fs::File::from);
    let writer = std::thread::Builder::new()
        .name("symbiont-stdout".into())
        .spawn(move || match stdout {
            Ok(file) => transport::write_frames(file, to_client),
            Err(_) => transport::write_frames(std::io::stdout(), to_client),
        })
        .expect("the stdout writer thread starts");
    Server::new(server_input, server_output, socket).serve(CatchPanic(service)).await;
    // `exit` (or a closed stdin) while a run is going: it stops as on Ctrl-C before the process
    // ends (`main` exits without running destructors).
    run::stop_all().await;
    // The server has written its last frame: let it reach the client.
    input.abort();
    let _ = output.await;
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    SHUT_DOWN.load(std::sync::atomic::Ordering::SeqCst)
}

/// Writes a line to stderr, which clients keep as the server's log.
pub(crate) fn log(message: String) {
    eprintln!("symbiont-lsp: {message}");
}

pub(crate) fn panic_error(panic: &(dyn Any + Send)) -> jsonrpc::Error {
    let message = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    log(format!("a request panicked: {}", message.as_deref().unwrap_or("(no message)")));
    jsonrpc::Error {
        code: jsonrpc::ErrorCode::InternalError,
        message: format!("internal error: the request panicked: {}", message.as_deref().unwrap_or("(no message)")).into(),
        data: None,
    }
}

/// Turns a panic in any handler into an error response for its request (or nothing for a
/// notification), so one bad request never takes the server down.
struct CatchPanic<S>(S);

impl<S> tower::Service<Request> for CatchPanic<S>
where
    S: tower::Service<Request, Response = Option<Response>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Option<Response>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Option<Response>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let id = req.id().cloned();
        let method = req.method().to_string();
        let on_panic = {
            let id = id.clone();
            move |panic: Box<dyn Any + Send>| {
                let error = panic_error(panic.as_ref());
                Ok(id.map(|id| Response::from_error(id, error)))
            }
        };
        // A request always gets a response: tower-lsp-server answers an unknown `$/` request
        // with nothing, where the protocol asks for MethodNotFound.
        let answered = move |response: Option<Response>| match (response, id) {
            (None, Some(id)) => Some(Response::from_error(
                id,
                jsonrpc::Error { code: jsonrpc::ErrorCode::MethodNotFound, message: "Method not found".into(), data: Some(method.into()) },
            )),
            (response, _) => response,
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.0.call(req))) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().map(|result| result.unwrap_or_else(on_panic).map(answered)).boxed(),
            Err(panic) => futures::future::ready(on_panic(panic)).boxed(),
        }
    }
}

//! # condor-serve: a local web page and JSON API over a text-to-image model
//!
//! `condor serve` loads a checkpoint once ([`App`]) and serves, on loopback unless told otherwise:
//!
//! - `GET /`: a page with a prompt, the number of images, a seed and truncation; the grid appears
//!   without a reload.
//! - `POST /v1/generate` with `{"prompt": "a red bird", "n": 4, "seed": 0}` (optionally `truncation`,
//!   `noise`, `model`): base64 PNGs in JSON ([`api::GenerateResponse`]).
//! - `GET /v1/models` and `GET /health`.
//!
//! Every bound is in [`Limits`] (body size, prompt length, image count, queue length, connections,
//! time) and a request past one gets an HTTP 4xx or 503 with a JSON message that names it.
//! Generations queue first-in first-out for a fixed number of workers ([`queue::WorkQueue`]).
//! Clients name models by id, never by path.

pub mod api;
pub mod app;
pub mod error;
pub mod limits;
pub mod queue;
pub mod routes;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

pub use app::App;
pub use error::{ApiError, ServeError};
pub use limits::Limits;
pub use server::serve;

/// Serves `app` on `address` until Ctrl-C, on a runtime of its own; calls `ready` with the bound
/// address (port 0 picks a free one) once it listens.
pub fn run(app: App, address: SocketAddr, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| ServeError::Bind { address: address.to_string(), source })?;
        ready(listener.local_addr()?);
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        Ok(serve(listener, Arc::new(app), ctrl_c).await?)
    })
}

//! The HTTP routes: the page, the JSON API, and the JSON errors of everything else.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::time::Instant;

use crate::api::{GenerateRequest, GenerateResponse, Health, ModelList};
use crate::app::App;
use crate::error::ApiError;

/// The single page: a prompt form whose grid of images appears without a reload.
const PAGE: &str = include_str!("page.html");

/// The router of `app`: `GET /`, `GET /health`, `GET /v1/models`, `POST /v1/generate`; every other
/// path or method gets a JSON error. Request bodies are read in full, within the body-size and
/// read-time limits, before any handler runs.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/generate", post(generate))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), read_body))
        .with_state(app)
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn health(State(app): State<Arc<App>>) -> Json<Health> {
    Json(app.health())
}

async fn models(State(app): State<Arc<App>>) -> Json<ModelList> {
    Json(app.models())
}

async fn generate(
    State(app): State<Arc<App>>,
    body: Result<Json<GenerateRequest>, JsonRejection>,
) -> Result<Json<GenerateResponse>, ApiError> {
    let deadline = Instant::now() + app.limits().request_timeout;
    let Json(request) = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let job = request.check(app.limits(), app.id())?;
    Ok(Json(app.generate(job, deadline).await?))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no such page: {}; the API is GET /health, GET /v1/models and POST /v1/generate", request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {}", request.uri().path(), request.method()),
    )
}

/// Reads the whole body before the handler runs: at most `max_body_bytes` (HTTP 413 past it) within
/// `read_timeout` (HTTP 408 for slower clients).
async fn read_body(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let limits = app.limits();
    let (parts, body) = request.into_parts();
    let declared = parts.headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    let declared = declared.and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    let read = tokio::time::timeout(limits.read_timeout, read_limited(body, limits.max_body_bytes, declared)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(BodyError::TooLarge { drained })) => {
            let message =
                format!("the request body is larger than this server's limit of {} bytes", limits.max_body_bytes);
            let error = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message);
            return if drained { error.into_response() } else { closing(error) };
        }
        Ok(Err(BodyError::Read(e))) => {
            return closing(ApiError::bad_request(format!("could not read the request body: {e}")))
        }
        Err(_) => {
            let message =
                format!("the request body took longer than {} s to arrive", limits.read_timeout.as_secs_f64());
            return closing(ApiError::new(StatusCode::REQUEST_TIMEOUT, message));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// The most bytes of an oversized body read and thrown away so that its connection stays usable;
/// a larger body's connection is closed instead.
const DRAIN_BYTES: usize = 1 << 20;

/// Why a body could not be read.
enum BodyError {
    /// Past the limit; `drained` when it was read to its end (the connection can carry more requests).
    TooLarge { drained: bool },
    /// The connection failed.
    Read(axum::Error),
}

/// Reads `body` if it has at most `max` bytes. A larger one is read to its end and discarded when it
/// is under [`DRAIN_BYTES`] (as its `declared` length says, or as it arrives), so that the client
/// reads the answer rather than a reset connection.
async fn read_limited(body: Body, max: usize, declared: usize) -> Result<Bytes, BodyError> {
    use http_body_util::BodyExt;
    if declared > DRAIN_BYTES {
        return Err(BodyError::TooLarge { drained: false });
    }
    let mut body = body;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len();
        if seen > DRAIN_BYTES {
            return Err(BodyError::TooLarge { drained: false });
        }
        if seen <= max {
            kept.extend_from_slice(&data);
        }
    }
    if seen > max {
        return Err(BodyError::TooLarge { drained: true });
    }
    Ok(Bytes::from(kept))
}

/// `error` with `connection: close`: its request's body was not read to the end, so the connection
/// cannot carry another request, and a client that pools connections must not try.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    response
}

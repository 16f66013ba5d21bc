//! The served application: one text-to-image pipeline, loaded once and shared by every request,
//! with its limits and work queue.

use std::io::Cursor;
use std::sync::Arc;

use base64::Engine;
use condor_infer::sample::to_rgb8;
use condor_infer::{InferError, TextToImage};
use tokio::time::Instant;

use crate::api::{GenerateResponse, Health, Job, ModelInfo, ModelList};
use crate::error::{ApiError, ServeError};
use crate::limits::Limits;
use crate::queue::WorkQueue;

/// What a server serves.
pub struct App {
    model: Arc<TextToImage>,
    id: String,
    limits: Limits,
    queue: WorkQueue,
}

impl App {
    /// Serves `model` under the id `id` within `limits`. Errors for a model that draws no images from
    /// prompts.
    pub fn new(model: TextToImage, id: impl Into<String>, limits: Limits) -> Result<Self, ServeError> {
        if !model.is_text_conditioned() {
            return Err(ServeError::Model(
                "this checkpoint is not a text-to-image model; condor serve draws images from prompts".into(),
            ));
        }
        if model.generator().sample_shape().len() != 3 {
            return Err(ServeError::Model("this checkpoint does not draw images".into()));
        }
        let queue = WorkQueue::new(limits.workers, limits.max_queued);
        Ok(Self { model: Arc::new(model), id: id.into(), limits, queue })
    }

    /// The limits requests must keep.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The served model's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `GET /health`.
    pub fn health(&self) -> Health {
        Health { status: "ok".into(), queued: self.queue.waiting(), running: self.queue.running() }
    }

    /// `GET /v1/models`.
    pub fn models(&self) -> ModelList {
        let card = self.model.card();
        let g = self.model.generator();
        let info = ModelInfo {
            id: self.id.clone(),
            plugin: card.generator.plugin.clone(),
            step: card.step,
            size: g.sample_shape().last().copied().unwrap_or(0),
            text_encoder: card.text_encoder.clone().unwrap_or_default(),
            truncation: g.styles().is_some() || g.augmentation_draw().is_some(),
            noise: g.styles().is_some(),
        };
        ModelList {
            models: vec![info],
            max_images: self.limits.max_images,
            max_prompt_chars: self.limits.max_prompt_chars,
        }
    }

    /// Runs a checked job on the queue before `deadline`.
    pub async fn generate(&self, job: Job, deadline: Instant) -> Result<GenerateResponse, ApiError> {
        let model = self.model.clone();
        let (prompt, seed) = (job.prompt.clone(), job.seed);
        let (drawn, timing) = self.queue.run(deadline, move || draw(&model, &job)).await?;
        let (images, size, truncated) = drawn.map_err(|e| match e {
            InferError::Request(message) => ApiError::bad_request(message),
            other => ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
        Ok(GenerateResponse {
            model: self.id.clone(),
            prompt,
            seed,
            size,
            truncated,
            queued_ms: timing.queued_ms,
            generation_ms: timing.run_ms,
            images,
        })
    }
}

/// Base64 PNGs of a job's images, their size, and whether its prompt was truncated.
type Drawn = (Vec<String>, usize, bool);

/// Draws a job's images and encodes each as a base64 PNG.
fn draw(model: &TextToImage, job: &Job) -> Result<Drawn, InferError> {
    let drawn = model.generate(std::slice::from_ref(&job.prompt), job.n, job.seed, &job.options)?;
    let size = drawn.images.dim(2)?;
    let images = to_rgb8(&drawn.images)?.into_iter().map(|rgb| png_base64(rgb, size)).collect::<Result<_, _>>()?;
    Ok((images, size, !drawn.truncated.is_empty()))
}

/// An `S x S` RGB image as a base64-encoded PNG.
fn png_base64(rgb: Vec<u8>, size: usize) -> Result<String, InferError> {
    let image = image::RgbImage::from_raw(size as u32, size as u32, rgb)
        .ok_or_else(|| InferError::Request("an image has the wrong number of pixels".into()))?;
    let mut png = Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| InferError::Image { path: "(response)".into(), reason: e.to_string() })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(png.into_inner()))
}

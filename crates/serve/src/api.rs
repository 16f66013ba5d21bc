//! The JSON API's requests and answers, and the checks a request passes before it is queued.

use condor_infer::styles::{parse_noise, StyleOptions};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::limits::Limits;

/// `POST /v1/generate`'s body. Unknown fields are refused, so a misspelt option is not silently ignored.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// The sentence to draw.
    pub prompt: String,
    /// Number of images.
    #[serde(default = "default_images")]
    pub n: usize,
    /// Seed of the latent codes: the same seed and prompt give the same images.
    #[serde(default)]
    pub seed: u64,
    /// Truncation psi, for models with a style space or conditioning augmentation.
    #[serde(default)]
    pub truncation: Option<f64>,
    /// Noise inputs of style-based models: `latent`, `fixed` or `zero`.
    #[serde(default)]
    pub noise: Option<String>,
    /// The model's id (see `GET /v1/models`); the served model when absent.
    #[serde(default)]
    pub model: Option<String>,
}

fn default_images() -> usize {
    4
}

/// A request that passed its checks: what a worker draws.
#[derive(Clone, Debug)]
pub struct Job {
    /// The prompt, trimmed.
    pub prompt: String,
    /// Number of images.
    pub n: usize,
    /// Latent seed.
    pub seed: u64,
    /// Truncation and noise.
    pub options: StyleOptions,
}

impl GenerateRequest {
    /// Checks the request against `limits` and the served model's id; returns the job to run.
    pub fn check(self, limits: &Limits, model_id: &str) -> Result<Job, ApiError> {
        if let Some(model) = self.model.as_deref().filter(|m| *m != model_id) {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!("no model `{model}` is served here; GET /v1/models lists them (this server has `{model_id}`)"),
            ));
        }
        let prompt = self.prompt.trim();
        if prompt.is_empty() {
            return Err(ApiError::bad_request("the prompt is empty; describe a bird, e.g. \"a red bird\""));
        }
        let chars = prompt.chars().count();
        if chars > limits.max_prompt_chars {
            return Err(ApiError::bad_request(format!(
                "the prompt has {chars} characters; this server takes at most {}",
                limits.max_prompt_chars
            )));
        }
        if !(1..=limits.max_images).contains(&self.n) {
            return Err(ApiError::bad_request(format!("n must be 1 to {} images, not {}", limits.max_images, self.n)));
        }
        if let Some(psi) = self.truncation {
            if !(0.0..=2.0).contains(&psi) {
                return Err(ApiError::bad_request(format!("truncation must be 0 to 2, not {psi}")));
            }
        }
        let noise =
            parse_noise(self.noise.as_deref().unwrap_or("latent")).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Job {
            prompt: prompt.to_string(),
            n: self.n,
            seed: self.seed,
            options: StyleOptions { truncation: self.truncation, noise },
        })
    }
}

/// `POST /v1/generate`'s answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerateResponse {
    /// The model's id.
    pub model: String,
    /// The prompt drawn (trimmed).
    pub prompt: String,
    /// The latent seed.
    pub seed: u64,
    /// Image width and height in pixels.
    pub size: usize,
    /// Whether the prompt was longer than the text encoder reads and was cut.
    pub truncated: bool,
    /// Milliseconds spent waiting for a worker.
    pub queued_ms: u64,
    /// Milliseconds spent generating and encoding.
    pub generation_ms: u64,
    /// The images, each a base64-encoded PNG.
    pub images: Vec<String>,
}

/// One model in `GET /v1/models`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The id requests name it by.
    pub id: String,
    /// Its generator plugin.
    pub plugin: String,
    /// The training step of its weights.
    pub step: u64,
    /// Image width and height in pixels.
    pub size: usize,
    /// The sentence encoder it reads prompts with.
    pub text_encoder: String,
    /// Whether `truncation` is available (style-based generators, conditioning augmentation).
    pub truncation: bool,
    /// Whether `noise` is available (style-based generators).
    pub noise: bool,
}

/// `GET /v1/models`'s answer: the models and the limits requests must keep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelList {
    /// The served models.
    pub models: Vec<ModelInfo>,
    /// The most images per request.
    pub max_images: usize,
    /// The longest prompt, in characters.
    pub max_prompt_chars: usize,
}

/// `GET /health`'s answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok` while the server serves.
    pub status: String,
    /// Generation requests waiting for a worker.
    pub queued: usize,
    /// Generations running.
    pub running: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: serde_json::Value) -> Result<Job, String> {
        let r: GenerateRequest = serde_json::from_value(json).map_err(|e| e.to_string())?;
        r.check(&Limits::default(), "birds").map_err(|e| format!("{} {}", e.status.as_u16(), e.message))
    }

    #[test]
    fn good_requests_get_defaults_and_bad_ones_say_what_is_wrong() {
        let job = request(serde_json::json!({"prompt": "  a red bird "})).unwrap();
        assert_eq!((job.prompt.as_str(), job.n, job.seed), ("a red bird", 4, 0));
        assert!(job.options.is_plain());
        let job = request(serde_json::json!({"prompt": "a", "n": 2, "seed": 9, "truncation": 0.5, "model": "birds"}))
            .unwrap();
        assert_eq!((job.n, job.seed, job.options.truncation), (2, 9, Some(0.5)));
        let cases = [
            (serde_json::json!({"prompt": " "}), "400 the prompt is empty"),
            (serde_json::json!({"prompt": "a".repeat(1001)}), "400 the prompt has 1001 characters"),
            (serde_json::json!({"prompt": "a", "n": 0}), "400 n must be 1 to 16 images, not 0"),
            (serde_json::json!({"prompt": "a", "n": 17}), "400 n must be 1 to 16 images, not 17"),
            (serde_json::json!({"prompt": "a", "truncation": -1}), "400 truncation must be 0 to 2"),
            (serde_json::json!({"prompt": "a", "noise": "pink"}), "400 unknown noise mode `pink`"),
            (serde_json::json!({"prompt": "a", "model": "../etc/passwd"}), "404 no model `../etc/passwd`"),
            (serde_json::json!({"prompt": "a", "steps": 3}), "unknown field `steps`"),
            (serde_json::json!({"prompt": 3}), "invalid type: integer `3`, expected a string"),
            (serde_json::json!({"n": 3}), "missing field `prompt`"),
        ];
        for (json, expected) in cases {
            let err = request(json.clone()).unwrap_err();
            assert!(err.starts_with(expected) || err.contains(expected), "{json}: {err}");
        }
    }
}

//! # condor-text: sentence encoders for text conditioning
//!
//! [`SentenceEncoder`] runs a BERT-family sentence-transformers model (config.json, tokenizer.json,
//! model.safetensors) through candle-transformers: batches padded to their longest text, mask-aware
//! mean pooling of the last hidden state, L2 normalisation; token embeddings and their mask for models
//! that attend over words. It implements [`condor_core::TextEncoder`].
//!
//! The default model, all-MiniLM-L6-v2 (384-dim, Apache-2.0), ships in `weights/` as float16, so
//! encoding works offline; [`ModelSource`] also takes any local folder or a hub id.
//! [`cache::cached_embeddings`] encodes a dataset's captions once and stores them.
//!
//! ```no_run
//! use condor_text::{ModelSource, SentenceEncoder};
//! let folder = ModelSource::shipped().resolve()?;
//! let encoder = SentenceEncoder::load(&folder, &candle_core::Device::Cpu)?;
//! let e = encoder.encode_batch(&["a red bird", "a small red bird"])?;
//! assert_eq!(e.sentences.dims(), &[2, 384]);
//! # Ok::<(), condor_text::TextError>(())
//! ```

pub mod cache;
pub mod encoder;
pub mod error;
pub mod pooling;
pub mod source;

pub use encoder::{Encoded, SentenceEncoder};
pub use error::{Result, TextError};
pub use pooling::{load_pooling, AttentionPooling, PoolingShape};
pub use source::{export_model, ModelFiles, ModelSource, DEFAULT_HUB_ID, DEFAULT_MODEL_DIR};

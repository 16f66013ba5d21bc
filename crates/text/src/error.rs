//! Errors of the text encoders.

use std::path::PathBuf;

/// Why text could not be encoded or a model not loaded.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A model file is missing.
    #[error("{file} is missing. {hint}")]
    MissingFile {
        /// The file that was looked for.
        file: PathBuf,
        /// What to do about it.
        hint: String,
    },
    /// A model file exists but cannot be read or parsed.
    #[error("cannot read {file}: {reason}")]
    BadFile {
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// A hub model is not cached and cannot be downloaded.
    #[error(
        "model `{repo}` is not in the local Hugging Face cache and could not be downloaded ({reason}). \
             Connect to the internet, or download the model (config.json, tokenizer.json, model.safetensors) \
             and pass its folder instead"
    )]
    Unavailable {
        /// The hub repository.
        repo: String,
        /// What failed.
        reason: String,
    },
    /// A prompt is empty or holds no words.
    #[error("prompt {index} is empty{detail}: give the text to encode, such as \"a small red bird\"")]
    EmptyPrompt {
        /// Position of the prompt in the batch.
        index: usize,
        /// More about it.
        detail: &'static str,
    },
    /// No prompts at all.
    #[error("no prompts were given")]
    NoPrompts,
    /// Parts that must fit together do not.
    #[error("{0}")]
    Mismatch(String),
    /// Tokenisation failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

impl From<TextError> for condor_core::Error {
    fn from(e: TextError) -> Self {
        match e {
            TextError::Candle(c) => condor_core::Error::Candle(c),
            other => condor_core::Error::InvalidInput(other.to_string()),
        }
    }
}

/// Result with [`TextError`].
pub type Result<T> = std::result::Result<T, TextError>;

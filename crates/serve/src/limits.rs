//! The bounds one server keeps: every request past one gets an error that names it.

use std::time::Duration;

/// What the server accepts and how long it waits. The defaults suit one user on a laptop.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The longest prompt, in characters.
    pub max_prompt_chars: usize,
    /// The most images one request may ask for.
    pub max_images: usize,
    /// Generation requests that may wait for a worker; more are refused (HTTP 503) until some finish.
    pub max_queued: usize,
    /// Generations run at once. One uses every core, so more only share them.
    pub workers: usize,
    /// Connections held open at once; more are answered HTTP 503 and closed.
    pub max_connections: usize,
    /// How long a request may take in all: waiting in the queue and generating.
    pub request_timeout: Duration,
    /// How long a client may take to send its headers, and then its body.
    pub read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            max_prompt_chars: 1000,
            max_images: 16,
            max_queued: 32,
            workers: 1,
            max_connections: 256,
            request_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(10),
        }
    }
}

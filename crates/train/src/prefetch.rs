//! Data prefetch: the next iteration's batches are drawn on a CPU thread while the current iteration
//! runs, so loading, rendering and uploading overlap with the device's work.
//!
//! Every draw of iteration `s` comes from generators derived from `(seed, s, sub-step)`, so preparing an
//! iteration early gives exactly the batches preparing it on time would: prefetch never changes a run.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::Device;
use condor_core::rng::Stream;
use condor_core::{Batch, Conditioning, DataSource, Rng};

use crate::error::{Result, TrainError};

/// The data of one training iteration, each draw with the generator that continues after it (for the
/// noise the trainer draws next).
pub struct Prepared {
    /// The iteration.
    pub step: u64,
    /// One real batch per discriminator step.
    pub d_batches: Vec<(Batch, Rng)>,
    /// The generator step's conditioning.
    pub g_conditioning: (Option<Conditioning>, Rng),
}

/// What one iteration draws from a data source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IterationShape {
    /// The run seed.
    pub seed: u64,
    /// Discriminator steps per iteration.
    pub d_steps: u64,
    /// The global batch size.
    pub batch_size: usize,
}

/// Draws the data of iteration `step` (what [`crate::Trainer::step`] would draw itself).
pub fn prepare(data: &dyn DataSource, shape: IterationShape, step: u64, device: &Device) -> Result<Prepared> {
    let IterationShape { seed, d_steps: k, batch_size: bs } = shape;
    let mut d_batches = Vec::with_capacity(k as usize);
    for j in 0..k {
        let mut rng = Stream::Iteration { step, draw: j }.rng(seed);
        let batch = data.batch(step * k + j, bs, &mut rng, device)?;
        d_batches.push((batch, rng));
    }
    let mut rng = Stream::Iteration { step, draw: k }.rng(seed);
    let cond = data.conditioning(step, bs, &mut rng, device)?;
    Ok(Prepared { step, d_batches, g_conditioning: (cond, rng) })
}

/// A thread that prepares one iteration ahead.
pub struct Prefetcher {
    requests: Option<Sender<u64>>,
    results: Receiver<Result<Prepared>>,
    pending: Option<u64>,
    worker: Option<JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts the thread for `data` on `device`.
    pub fn new(data: Arc<dyn DataSource>, shape: IterationShape, device: Device) -> Result<Self> {
        let (requests, jobs) = channel::<u64>();
        let (done, results) = channel();
        let worker = std::thread::Builder::new()
            .name("condor-prefetch".into())
            .spawn(move || {
                for step in jobs {
                    if done.send(prepare(data.as_ref(), shape, step, &device)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| TrainError::Config(format!("cannot start the data prefetch thread: {e}")))?;
        Ok(Self { requests: Some(requests), results, pending: None, worker: Some(worker) })
    }

    /// Starts preparing iteration `step` (after collecting any iteration still pending).
    pub fn request(&mut self, step: u64) {
        if self.pending.is_some() {
            let _ = self.results.recv();
        }
        let sent = self.requests.as_ref().is_some_and(|r| r.send(step).is_ok());
        self.pending = sent.then_some(step);
    }

    /// The prepared iteration `step`, if it was the one requested (waiting for it to finish); `None`
    /// otherwise, and the caller draws it itself.
    pub fn take(&mut self, step: u64) -> Option<Result<Prepared>> {
        let pending = self.pending.take()?;
        let result = self.results.recv().ok()?;
        (pending == step).then_some(result)
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

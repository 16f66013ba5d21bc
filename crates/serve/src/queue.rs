//! The work queue: generations run on a fixed number of blocking workers, requests wait for one in
//! arrival order (tokio's semaphore is first-in first-out), the queue has a bounded length, and every
//! request has a deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::ApiError;

/// Blocking work shared fairly between requests.
pub struct WorkQueue {
    workers: Arc<Semaphore>,
    waiting: AtomicUsize,
    running: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// Counts a request as waiting until it is dropped (served, or abandoned by its client).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A worker held by running work: freed when the work ends, even after its request gave up on it.
struct Running {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a job waited and ran, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Waiting for a worker.
    pub queued_ms: u64,
    /// Running.
    pub run_ms: u64,
}

impl WorkQueue {
    /// A queue with `workers` workers (at least one) and room for `max_waiting` waiting requests.
    pub fn new(workers: usize, max_waiting: usize) -> Self {
        Self {
            workers: Arc::new(Semaphore::new(workers.max(1))),
            waiting: AtomicUsize::new(0),
            running: Arc::new(AtomicUsize::new(0)),
            max_waiting,
        }
    }

    /// Requests waiting for a worker.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Work running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Runs `work` on a blocking worker once one is free, unless the queue is full (HTTP 503) or
    /// `deadline` passes first: while waiting (HTTP 503) or while running (HTTP 504; the work still
    /// finishes and then frees its worker).
    pub async fn run<T, F>(&self, deadline: Instant, work: F) -> Result<(T, Timing), ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let arrived = Instant::now();
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(ApiError::busy(format!(
                "the server is busy: {} requests are already waiting; try again shortly",
                self.max_waiting
            )));
        }
        let waiting = Waiting(&self.waiting);
        let permit = match tokio::time::timeout_at(deadline, self.workers.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(ApiError::busy("the server is shutting down")),
            Err(_) => {
                return Err(ApiError::busy(format!(
                    "the request waited {:.1} s for a worker, its time limit; the server is busy, try again shortly",
                    arrived.elapsed().as_secs_f64()
                )))
            }
        };
        drop(waiting);
        let started = Instant::now();
        self.running.fetch_add(1, Ordering::SeqCst);
        let held = Running { _permit: permit, running: self.running.clone() };
        let task = tokio::task::spawn_blocking(move || {
            let _held = held;
            work()
        });
        let out = match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the generation failed: {e}")))
            }
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the generation took longer than the request's time limit; ask for fewer images",
                ))
            }
        };
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        Ok((out, Timing { queued_ms: ms(started - arrived), run_ms: ms(started.elapsed()) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_in_arrival_order_and_a_full_queue_or_a_deadline_refuses() {
        let queue = Arc::new(WorkQueue::new(1, 3));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let far = Instant::now() + Duration::from_secs(30);
        // The first job holds the worker until `release` is sent, so the next three queue up.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = {
            let (queue, order) = (queue.clone(), order.clone());
            tokio::spawn(async move {
                queue
                    .run(far, move || {
                        hold.recv().unwrap();
                        order.lock().unwrap().push(0);
                    })
                    .await
            })
        };
        while queue.running() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut queued = Vec::new();
        for i in 1..=3 {
            let (mine, order) = (queue.clone(), order.clone());
            queued.push(tokio::spawn(async move { mine.run(far, move || order.lock().unwrap().push(i)).await }));
            while queue.waiting() < i {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let full = queue.run(far, || ()).await.unwrap_err();
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(full.message.contains("3 requests are already waiting"), "{}", full.message);
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        for q in queued {
            q.await.unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3], "first in, first out");
        assert_eq!((queue.waiting(), queue.running()), (0, 0));

        // A job that cannot get a worker before its deadline is refused, and one that overruns it
        // gets a timeout while its worker is freed when it ends.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let slow = {
            let queue = queue.clone();
            let deadline = Instant::now() + Duration::from_millis(150);
            tokio::spawn(async move { queue.run(deadline, move || hold.recv().unwrap()).await })
        };
        while queue.running() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let late = queue.run(Instant::now() + Duration::from_millis(30), || ()).await.unwrap_err();
        assert_eq!(late.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(late.message.contains("waited"), "{}", late.message);
        let overrun = slow.await.unwrap().unwrap_err();
        assert_eq!(overrun.status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(queue.running(), 1, "the overrunning work still holds its worker");
        release.send(()).unwrap();
        queue.run(far, || ()).await.unwrap();
        assert_eq!((queue.waiting(), queue.running()), (0, 0));
    }
}

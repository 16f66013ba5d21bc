//! A wall-clock profile of the CPU kernels and of whatever else calls [`timed`], switched on by the
//! environment variable `CONDOR_PROFILE=1` (read once). Off, [`timed`] costs one atomic load.
//!
//! Spans nest: a trainer phase contains the kernels it runs, and the table shows each on its own line
//! with its calls, total and share of the run's wall time (so nested lines do not add up to 100%).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// 0: not read yet, 1: off, 2: on.
static STATE: AtomicU8 = AtomicU8::new(0);

static SPANS: Mutex<Option<Spans>> = Mutex::new(None);

struct Spans {
    started: Instant,
    totals: HashMap<String, (u64, Duration)>,
}

/// Whether `CONDOR_PROFILE` asks for a profile.
pub fn enabled() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("CONDOR_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0");
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        s => s == 2,
    }
}

/// Runs `f`, adding its wall time to the span `name()` when profiling (the name is only built then).
pub fn timed<R>(name: impl FnOnce() -> String, f: impl FnOnce() -> R) -> R {
    let _span = span(name);
    f()
}

/// A span that adds the time until it is dropped to `name()`, when profiling.
pub fn span(name: impl FnOnce() -> String) -> Option<Span> {
    enabled().then(|| Span { name: name(), start: Instant::now() })
}

/// A running span of [`span`]; recorded when dropped.
pub struct Span {
    name: String,
    start: Instant,
}

impl Drop for Span {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let mut spans = SPANS.lock().unwrap_or_else(|e| e.into_inner());
        let spans = spans.get_or_insert_with(|| Spans { started: self.start, totals: HashMap::new() });
        let entry = spans.totals.entry(std::mem::take(&mut self.name)).or_default();
        entry.0 += 1;
        entry.1 += elapsed;
    }
}

/// Forgets what was recorded (say, after warm-up steps); the run's wall time starts again now.
pub fn reset() {
    let mut spans = SPANS.lock().unwrap_or_else(|e| e.into_inner());
    *spans = Some(Spans { started: Instant::now(), totals: HashMap::new() });
}

/// The spans recorded so far as a Markdown table, longest first; empty when nothing was recorded.
pub fn report() -> String {
    let spans = SPANS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(spans) = spans.as_ref() else { return String::new() };
    let wall = spans.started.elapsed().as_secs_f64();
    let mut rows: Vec<_> = spans.totals.iter().collect();
    rows.sort_by(|a, b| b.1 .1.cmp(&a.1 .1).then(a.0.cmp(b.0)));
    let mut out = format!("| span | calls | total (s) | share of {wall:.2} s |\n|---|---|---|---|\n");
    for (name, (calls, total)) in rows {
        let t = total.as_secs_f64();
        out += &format!("| {name} | {calls} | {t:.3} | {:.1}% |\n", 100.0 * t / wall);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_add_up_their_calls_and_time() {
        STATE.store(2, Ordering::Relaxed);
        reset();
        for _ in 0..3 {
            timed(|| "sleep".into(), || std::thread::sleep(Duration::from_millis(2)));
        }
        let table = report();
        let row = table.lines().find(|l| l.starts_with("| sleep |")).expect("a row for the span");
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], "3");
        assert!(cells[3].parse::<f64>().unwrap() >= 0.006, "{row}");
    }
}

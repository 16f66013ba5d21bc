//! A bounded load test of a running server: mixed good and bad requests, a fixed number in flight,
//! latency percentiles by kind. Shared by the integration test and `examples/load_test.rs`.

use std::time::{Duration, Instant};

/// One kind of request and the status it must get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A prompt and a few images: 200.
    Good,
    /// `GET /health`: 200.
    Health,
    /// Not JSON: 400.
    BadJson,
    /// An empty prompt: 400.
    EmptyPrompt,
    /// Too many images: 400.
    TooMany,
    /// A body past the size limit: 413.
    Huge,
    /// A field of the wrong type: 422.
    WrongType,
}

impl Kind {
    /// The mix, in the order requests cycle through it: four in ten are generations.
    pub const MIX: [Kind; 10] = [
        Kind::Good,
        Kind::BadJson,
        Kind::Good,
        Kind::EmptyPrompt,
        Kind::Good,
        Kind::Health,
        Kind::Good,
        Kind::TooMany,
        Kind::WrongType,
        Kind::Huge,
    ];

    /// The status the server must answer.
    pub fn expected(self) -> u16 {
        match self {
            Kind::Good | Kind::Health => 200,
            Kind::BadJson | Kind::EmptyPrompt | Kind::TooMany => 400,
            Kind::Huge => 413,
            Kind::WrongType => 422,
        }
    }

    async fn send(self, client: &reqwest::Client, base: &str, i: usize) -> reqwest::Result<reqwest::Response> {
        let generate = format!("{base}/v1/generate");
        let json = |body: serde_json::Value| client.post(&generate).json(&body).send();
        match self {
            Kind::Good => {
                json(serde_json::json!({"prompt": "a red bird with black wings", "n": 1 + i % 4, "seed": i})).await
            }
            Kind::Health => client.get(format!("{base}/health")).send().await,
            Kind::BadJson => {
                client.post(&generate).header("content-type", "application/json").body("{\"prompt\": ").send().await
            }
            Kind::EmptyPrompt => json(serde_json::json!({"prompt": "   "})).await,
            Kind::TooMany => json(serde_json::json!({"prompt": "a bird", "n": 1000})).await,
            Kind::Huge => json(serde_json::json!({"prompt": "a".repeat(64 * 1024)})).await,
            Kind::WrongType => json(serde_json::json!({"prompt": "a bird", "n": "four"})).await,
        }
    }
}

/// What a load test saw.
#[derive(Debug, Default)]
pub struct Report {
    /// `(kind, status, latency)` of every request.
    pub results: Vec<(Kind, u16, Duration)>,
    /// Requests that got no HTTP answer, with why.
    pub failures: Vec<String>,
    /// Wall time of the whole test.
    pub wall: Duration,
}

impl Report {
    /// Requests whose status was not the one their kind must get.
    pub fn unexpected(&self) -> Vec<(Kind, u16)> {
        self.results.iter().filter(|(k, s, _)| k.expected() != *s).map(|(k, s, _)| (*k, *s)).collect()
    }

    /// A markdown table: count, statuses and latency percentiles (ms) for each kind.
    pub fn to_markdown(&self) -> String {
        let mut kinds: Vec<Kind> = self.results.iter().map(|r| r.0).collect();
        kinds.sort();
        kinds.dedup();
        let mut out = String::from(
            "| request | count | statuses | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|\n",
        );
        for kind in kinds {
            let mut ms: Vec<f64> =
                self.results.iter().filter(|r| r.0 == kind).map(|r| r.2.as_secs_f64() * 1e3).collect();
            ms.sort_by(f64::total_cmp);
            let mut statuses: Vec<u16> = self.results.iter().filter(|r| r.0 == kind).map(|r| r.1).collect();
            statuses.sort();
            statuses.dedup();
            let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
            out += &format!(
                "| {kind:?} | {} | {statuses:?} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
                ms.len(),
                pct(0.5),
                pct(0.9),
                pct(0.99),
                ms[ms.len() - 1]
            );
        }
        out += &format!(
            "\n{} requests in {:.2} s ({:.1} per second), {} without an answer\n",
            self.results.len() + self.failures.len(),
            self.wall.as_secs_f64(),
            self.results.len() as f64 / self.wall.as_secs_f64(),
            self.failures.len()
        );
        out
    }
}

/// Sends `total` requests cycling through [`Kind::MIX`], `concurrency` at a time, to the server at
/// `base` (`http://host:port`).
pub async fn run(base: &str, total: usize, concurrency: usize) -> Report {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("an HTTP client");
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, base, next) = (client.clone(), base.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Report::default();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= total {
                    return mine;
                }
                let kind = Kind::MIX[i % Kind::MIX.len()];
                let sent = Instant::now();
                match kind.send(&client, &base, i).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // Read the whole answer: latency includes the body.
                        let body = response.bytes().await;
                        match body {
                            Ok(_) => mine.results.push((kind, status, sent.elapsed())),
                            Err(e) => mine.failures.push(format!("{kind:?}: body: {e}")),
                        }
                    }
                    Err(e) => mine.failures.push(format!("{kind:?}: {e:?}")),
                }
            }
        }));
    }
    let mut report = Report::default();
    for task in tasks {
        let part = task.await.expect("a load task");
        report.results.extend(part.results);
        report.failures.extend(part.failures);
    }
    report.wall = started.elapsed();
    report
}

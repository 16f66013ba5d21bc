//! A bounded load test of a running `condor serve`: mixed good and bad requests, a fixed number in
//! flight, latency percentiles by kind, then a health check.
//!
//! ```text
//! condor serve --port 7860 &
//! cargo run --release -p condor-serve --example load_test -- http://127.0.0.1:7860 500 16
//! ```

#[path = "../tests/load/mod.rs"]
mod load;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args.first().cloned().unwrap_or_else(|| "http://127.0.0.1:7860".into());
    let number = |i: usize, default: usize| match args.get(i).map(|s| s.parse::<usize>()) {
        None => default,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: load_test [URL] [REQUESTS] [CONCURRENCY] (positive numbers)");
            std::process::exit(2);
        }
    };
    let (total, concurrency) = (number(1, 500), number(2, 16));
    println!("{total} requests, {concurrency} at a time, to {base}\n");
    let report = load::run(&base, total, concurrency).await;
    println!("{}", report.to_markdown());
    let unexpected = report.unexpected();
    for failure in report.failures.iter().take(10) {
        println!("no answer: {failure}");
    }
    let health = reqwest::get(format!("{base}/health")).await.map(|r| r.status().as_u16());
    println!("health after the test: {health:?}");
    println!("answers with an unexpected status: {} {:?}", unexpected.len(), &unexpected[..unexpected.len().min(10)]);
    if !unexpected.is_empty() || !report.failures.is_empty() || health.ok() != Some(200) {
        std::process::exit(1);
    }
}

//! CPU thread count for candle.

/// Sets `RAYON_NUM_THREADS` to candle's default thread count (the physical cores) when it is unset.
/// candle reads the variable before every CPU matrix product and, without it, counts the cores by
/// parsing `/proc/cpuinfo` each time: 10% of a CPU training step of configs/birds.toml (80 against
/// 88 images/s on 2 cores, `bench_text_to_image --config configs/birds.toml`). Rayon's own pool
/// then uses the same count. Call it first in `main`, before any thread starts: it changes the
/// process environment.
pub fn cache_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", candle_core::utils::get_num_threads().to_string());
    }
}

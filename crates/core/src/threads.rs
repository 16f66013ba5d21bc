//! Process settings for fast CPU training: candle's thread count, rayon's pool and the allocator's reuse of memory.

/// Applies [`configure_server_runtime`] and [`join_pool_from_main`]: for programs that compute on
/// their main thread. Call it first in `main`, before any thread starts.
pub fn configure_cpu_runtime() {
    configure_server_runtime();
    join_pool_from_main();
}

/// Applies [`cache_thread_count`], [`inline_candle_elementwise`] and [`keep_freed_memory`], leaving
/// rayon's pool to its own threads: for programs whose computing threads are not the main thread (a
/// server's request workers), which a main thread in the pool would not help. Call it first in `main`,
/// before any thread starts.
pub fn configure_server_runtime() {
    cache_thread_count();
    inline_candle_elementwise();
    keep_freed_memory();
}

/// Sets `CANDLE_NUM_THREADS=1` when it is unset, so that candle's own element-wise ops run on the
/// calling thread. candle splits every element-wise op of 65,536 elements or more over a pool of
/// threads whose caller waits by spinning, without yielding, and whose workers spin before they
/// sleep: on a machine whose cores are busy with other processes a descheduled worker costs the
/// caller a whole time slice, which made a `configs/ring8.toml` step six times slower there. The
/// heavy element-wise work of Condor's models runs in condor-core's fused kernels, which use rayon
/// above their own size thresholds, so the pool had little left to speed up. Call it before any
/// thread starts: it changes the process environment.
pub fn inline_candle_elementwise() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

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

/// With glibc, keeps freed memory in the process for the next allocation instead of returning it to
/// the kernel. A CPU training step allocates and frees every activation and gradient; by default
/// glibc serves the large ones from fresh pages (mmap) and gives them back, and the page faults of
/// touching them again took a tenth of a step of configs/birds.toml (1.09 against 0.98 s on 2 cores).
/// The process's memory then stays near its peak. Elsewhere this does nothing.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads allocate.
    unsafe {
        // The largest threshold glibc accepts (32 MiB on 64-bit): larger blocks still use mmap.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Builds rayon's global pool (`RAYON_NUM_THREADS` threads) with the calling thread as one of its
/// workers, so that a kernel that splits its work runs one share on this thread. Otherwise the caller
/// hands every piece to the pool's threads and sleeps until they finish: on 2 cores that is a wake-up
/// per parallel kernel, and the pool's workers, spinning for more work, compete with the caller for
/// the cores between kernels, so the small layers of the StyleGAN-like model gained nothing from a
/// second thread. The main thread only works for the pool while it waits in a rayon call, so a
/// program that computes on other threads should not call this. Does nothing when the global pool
/// already exists. Call it first in `main`.
pub fn join_pool_from_main() {
    let _ = rayon::ThreadPoolBuilder::new().use_current_thread().build_global();
}

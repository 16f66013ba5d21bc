//! `just bench`'s text-to-image figures, printed as one row of a Markdown table:
//! - training throughput (images/s) of the 64x64 conditional DCGAN of `configs/birds-gpu.toml` at
//!   batch 64: one Algorithm-1 iteration with the GAN-CLS discriminator terms, a GAN-INT half-batch and
//!   the conditioning-augmentation KL term, on the synthetic birds;
//! - txt2img latency from process start to PNG written (this program re-runs itself as a child that
//!   draws "a red bird" from the shipped checkpoint);
//! - peak memory (resident set high-water mark) of the training and txt2img processes.
//!
//! `bench/dcgan_torch.py` builds the same models and step in PyTorch and prints the same row.
//!
//! ```sh
//! cargo run --release --example bench_text_to_image -- [--steps 5] [--device cpu]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;
use condor::candle_core;
use condor::train::{RunConfig, Trainer};
use condor::txt2img::SampleArgs;

#[derive(Parser)]
#[command(about = "Text-to-image benchmarks: DCGAN training throughput, txt2img latency, peak memory")]
struct Cli {
    /// Timed training iterations (after one warm-up iteration).
    #[arg(long, default_value_t = 5)]
    steps: u64,
    /// auto (the first GPU this build can open, else the CPU), cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Run config whose model and step are timed (configs/birds-stylegan-gpu.toml for the
    /// StyleGAN-like step).
    #[arg(long, default_value = "configs/birds-gpu.toml")]
    config: PathBuf,
    /// Override the config's training precision: f32, bf16 or f16 (mixed precision; GPUs).
    #[arg(long)]
    precision: Option<condor::train::Precision>,
    /// Internal: draw one txt2img grid into this file, print the peak memory and exit.
    #[arg(long, hide = true)]
    txt2img_child: Option<PathBuf>,
}

/// The process's peak resident memory in MiB (Linux: `VmHWM`), if the platform reports it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |m| format!("{m:.0} MiB"))
}

fn main() -> anyhow::Result<()> {
    condor::core::threads::configure_cpu_runtime();
    let cli = Cli::parse();
    if let Some(out) = cli.txt2img_child {
        let args = SampleArgs {
            n: Some(4),
            out: Some(out),
            device: cli.device,
            ..SampleArgs::for_prompts(vec!["a red bird".into()])
        };
        condor::txt2img::run(&args, &mut |_| {})?;
        println!("{}", peak_rss_mib().unwrap_or(f64::NAN));
        return Ok(());
    }

    // txt2img first, in a fresh process, so its latency includes loading everything.
    let out = std::env::temp_dir().join(format!("condor-bench-{}.png", std::process::id()));
    let started = Instant::now();
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["--device", &cli.device, "--txt2img-child"])
        .arg(&out)
        .output()
        .context("cannot start the txt2img child process")?;
    let latency = started.elapsed().as_secs_f64();
    if !child.status.success() || !out.is_file() {
        bail!("txt2img failed: {}", String::from_utf8_lossy(&child.stderr));
    }
    let _ = std::fs::remove_file(&out);
    let txt2img_rss = String::from_utf8_lossy(&child.stdout).trim().parse::<f64>().ok().filter(|m| m.is_finite());

    let device = condor::parse_device(&cli.device).map_err(anyhow::Error::msg)?;
    let mut config = RunConfig::from_file(&cli.config)?;
    config.steps = u64::MAX;
    if let Some(p) = cli.precision {
        config.training.precision = p;
    }
    let batch = config.batch_size;
    let mut trainer = Trainer::new(config, &condor::registry(), &device)?;
    // The resolved config: the image size comes from the data when the config leaves it out.
    let resolved = trainer.config();
    let model = format!(
        "{} {}, {:?}",
        resolved.generator.plugin,
        resolved.generator.config.get("image_size").map_or_else(String::new, |s| format!("{s}x{s}")),
        resolved.training.precision
    );
    trainer.step()?;
    condor::core::profile::reset();
    let started = Instant::now();
    for _ in 0..cli.steps {
        trainer.step()?;
    }
    let throughput = (batch as u64 * cli.steps) as f64 / started.elapsed().as_secs_f64();
    if condor::core::profile::enabled() {
        eprintln!("Profile of the timed steps (CONDOR_PROFILE):\n{}", condor::core::profile::report());
    }

    println!("| implementation | train step, {model}, batch {batch} | txt2img latency | peak memory |");
    println!("|---|---|---|---|");
    println!(
        "| Condor {} ({}, {} threads) | {throughput:.1} img/s | {latency:.2} s | train {}{}, txt2img {} |",
        env!("CARGO_PKG_VERSION"),
        cli.device,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        mib(peak_rss_mib()),
        device_memory(&device).map_or_else(String::new, |m| format!(" (GPU in use: {m:.0} MiB)")),
        mib(txt2img_rss),
    );
    Ok(())
}

/// Memory in use on the CUDA device (everything on it, as `nvidia-smi` counts), in MiB.
#[cfg(feature = "cuda")]
fn device_memory(device: &candle_core::Device) -> Option<f64> {
    use condor::candle_core::cuda_backend::cudarc::driver::result::mem_get_info;
    device.as_cuda_device().ok()?;
    let (free, total) = mem_get_info().ok()?;
    Some((total - free) as f64 / (1024.0 * 1024.0))
}

#[cfg(not(feature = "cuda"))]
fn device_memory(_: &candle_core::Device) -> Option<f64> {
    None
}

//! Text to image with the shipped checkpoint: `cargo run --release --example txt2img -- "a red bird"`.
//! Takes the same arguments as `condor sample` (`--n`, `--seed`, `--out`, `--checkpoint`, `--device`)
//! and runs the same code.

use clap::Parser;

#[derive(Parser)]
#[command(about = "Draw birds from a sentence with Condor's shipped text-to-image checkpoint")]
struct Cli {
    #[command(flatten)]
    args: condor::txt2img::SampleArgs,
}

fn main() {
    condor::core::threads::configure_cpu_runtime();
    let cli = Cli::parse();
    if let Err(e) = condor::txt2img::run(&cli.args, &mut |line| println!("{line}")) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

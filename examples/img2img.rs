//! Image to image with the shipped CycleGAN (red birds to blue):
//! `cargo run --release --example img2img -- [--reverse] [images...]`. With no image it translates
//! eight test birds. Takes the same arguments as `condor translate` and runs the same code.

use clap::Parser;

#[derive(Parser)]
#[command(about = "Translate images with Condor's shipped red-to-blue CycleGAN, or any translation checkpoint")]
struct Cli {
    #[command(flatten)]
    args: condor::img2img::TranslateArgs,
}

fn main() {
    condor::core::threads::configure_cpu_runtime();
    let cli = Cli::parse();
    if let Err(e) = condor::img2img::run(&cli.args, &condor::registry(), &mut |line: String| println!("{line}")) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

//! The `condor` command line for any registry: `condor` itself is [`main`] with Condor's built-in
//! plugins, and a plugin crate outside Condor gets the same commands (train, resume, Ctrl-C,
//! `--gpus`, sample, eval, inspect, export) with its own plugins in a three-line `main`:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut registry = condor_cli::builtin_registry();
//!     // my_plugin::register(&mut registry).unwrap();
//!     condor_cli::main(registry)
//! }
//! ```

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
pub use condor;
use condor::core::Registry;

/// Prints a line on standard output, returning an error (rather than panicking) when it is closed.
macro_rules! say {
    ($($arg:tt)*) => { writeln!(std::io::stdout(), $($arg)*)? };
}

mod args;
mod classifiers;
mod data;
mod models;
mod reconstruct;
mod scores;
mod serve;
mod train;

use args::{Cli, Command, DataCommand, MnistCommand, TextEncoderCommand};

/// Condor's built-in plugins (MLP, DCGAN, StyleGAN-like), to add a crate's own to.
pub fn builtin_registry() -> Registry {
    condor::registry()
}

/// The `condor` program for `registry`'s plugins: reads the process's arguments, sets up threads and
/// logging, runs the command and turns its error into a message and an exit code.
pub fn main(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    // A server computes on its request workers; every other command on this thread.
    match cli.command {
        Command::Serve(_) => condor::core::threads::configure_server_runtime(),
        _ => condor::core::threads::configure_cpu_runtime(),
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).format_timestamp(None).init();
    match run(cli, &registry) {
        Ok(()) => ExitCode::SUCCESS,
        // Output piped into a program that stopped reading (`condor ... | head`) is not a failure.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one `condor` command given as arguments (the program name first, as in `std::env::args`)
/// with `registry`'s plugins: for tests and for programs that embed the command line.
pub fn run_args<I, T>(args: I, registry: &Registry) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run(Cli::try_parse_from(args)?, registry)
}

/// Runs a parsed command.
fn run(cli: Cli, registry: &Registry) -> Result<()> {
    match cli.command {
        Command::Train(args) => train::train(args, registry),
        Command::NcclId => train::nccl_id(),
        Command::Sample(args) => models::sample(&args, registry),
        Command::Interpolate(args) => models::interpolate(&args, registry),
        Command::Serve(args) => serve::serve(args, registry),
        Command::Export(args) => models::export(args),
        Command::Recalibrate(args) => models::recalibrate(args, registry),
        Command::Inspect(args) => models::inspect(args),
        Command::Colours(args) => scores::colours(args, registry),
        Command::Eval(args) => scores::eval(args, registry),
        Command::BirdJudge(args) => scores::bird_judge(args),
        Command::Mnist(MnistCommand::Convert(args)) => scores::mnist_convert(args),
        Command::Mnist(MnistCommand::Judge(args)) => scores::mnist_judge(args),
        Command::Mnist(MnistCommand::Eval(args)) => scores::mnist_eval(args, registry),
        Command::Mnist(MnistCommand::Codes(args)) => classifiers::mnist_codes(args, registry),
        Command::Mnist(MnistCommand::Classify(args)) => classifiers::mnist_classify(args, registry),
        Command::Mnist(MnistCommand::Encode(args)) => classifiers::mnist_encode(args, registry),
        Command::Mnist(MnistCommand::Modes(args)) => scores::mnist_modes(args, registry),
        Command::Reconstruct(args) => reconstruct::reconstruct(args, registry),
        Command::Translate(args) => models::translate(&args, registry),
        Command::Encode(args) => data::encode(args),
        Command::Data(DataCommand::Preview(args)) => data::preview(args),
        Command::TextEncoder(TextEncoderCommand::Import(args)) => data::import_text_encoder(args),
        Command::TextEncoder(TextEncoderCommand::Pretrain(args)) => data::pretrain_text_encoder(args),
    }
}

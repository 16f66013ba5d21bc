//! `condor`: train GANs from a config file, sample from checkpoints, inspect checkpoints.

fn main() -> std::process::ExitCode {
    condor_cli::main(condor_cli::builtin_registry())
}

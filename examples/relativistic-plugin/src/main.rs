//! `condor-relativistic`: the `condor` command line with this crate's plugins added.

fn main() -> std::process::ExitCode {
    let mut registry = condor_cli::builtin_registry();
    condor_example_relativistic::register(&mut registry).expect("plugin names are free");
    condor_cli::main(registry)
}

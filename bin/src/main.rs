//! The `sluice` binary: parse arguments, set up logging, run the subcommand.

fn main() -> std::process::ExitCode {
    sluice_cli::main()
}

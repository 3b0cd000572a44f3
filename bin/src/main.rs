//! The `sluice` binary: parse arguments, set up logging, run the subcommand.

/// mimalloc keeps freed pages for reuse; glibc's allocator hands large per-frame buffers back
/// to the kernel and faults them in again on the next frame (12% of a receiver's CPU at bulk
/// rates, measured with perf; see docs/benchmarks.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sluice_cli::main()
}

//! The `wafersim` command: parsing and everything else lives in `wafersim::cli`.

/// mimalloc: per-thread heaps. With the system allocator, sweep threads serialise on the kernel's
/// page-fault and madvise paths (the step search allocates many small op records).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Ctrl-C or SIGTERM: remove half-written temporaries, then exit as interrupted (128 + 2).
    let _ = ctrlc::set_handler(|| {
        wafersim::report::remove_in_flight_temporaries();
        std::process::exit(130);
    });
    let code = wafersim::cli::run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::ExitCode::from(code)
}

//! The `wafersim` command: parsing and everything else lives in `wafersim::cli`.

fn main() -> std::process::ExitCode {
    let code = wafersim::cli::run(
        std::env::args_os(),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    std::process::ExitCode::from(code)
}

//! The `kiosk` binary: see `kiosk --help`.

fn main() -> std::process::ExitCode {
    kiosk::cli::main()
}

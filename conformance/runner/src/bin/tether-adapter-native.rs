//! The native adapter binary: the `tether` client behind the adapter protocol (see conformance/ADAPTERS.md).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let brk = match tether_conformance::native::parse_args(&args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tether-adapter-native: {e}");
            return ExitCode::from(2);
        }
    };
    match tether_conformance::native::run_stdio(brk) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tether-adapter-native: {e}");
            ExitCode::FAILURE
        }
    }
}

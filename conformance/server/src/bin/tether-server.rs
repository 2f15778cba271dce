//! The `tether-server` binary: the server half of the Tether contract. Every setting comes from
//! a TOML file, `TETHER_*` environment variables or flags; `tether-server --help` lists them.

fn main() {
    std::process::exit(tether_server::cli::main_with_args(
        std::env::args().skip(1).collect(),
    ));
}

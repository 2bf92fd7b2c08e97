//! The `stamp` binary: all behaviour lives in the library.

fn main() -> std::process::ExitCode {
    stamp::run(std::env::args_os())
}

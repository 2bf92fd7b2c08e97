//! The `stamp` binary: all behaviour lives in the library.

// Rendering thousands of accounts allocates many small strings; mimalloc does that faster
// than the system allocator (see `make bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stamp::run(std::env::args_os())
}

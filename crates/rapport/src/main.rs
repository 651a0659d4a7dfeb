//! The `rapport` command. Everything it does lives in the `rapport` library.

// The server allocates per request (HTTP/2 frames, messages, account copies); mimalloc
// serves that load far better than the system allocator: 6,050 against 10,049 single-event
// appends per second at 32 clients on the in-memory log (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rapport::main()
}

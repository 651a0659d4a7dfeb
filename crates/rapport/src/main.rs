//! The `rapport` command. Everything it does lives in the `rapport` library.

fn main() -> std::process::ExitCode {
    rapport::main()
}

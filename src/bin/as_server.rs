//! `as_server`: see [`authdns::auth_server`].

fn main() -> std::process::ExitCode {
    authdns::auth_server::main()
}

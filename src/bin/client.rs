//! `client`: see [`authdns::client`].

fn main() -> std::process::ExitCode {
    authdns::client::main()
}

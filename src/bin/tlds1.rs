//! `tlds1`: a TLDS with tlds1's defaults; see [`authdns::tlds`].

fn main() -> std::process::ExitCode {
    authdns::cli::tlds::main(&authdns::tlds::TLDS1)
}

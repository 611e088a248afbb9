//! `tlds2`: a TLDS with tlds2's defaults; see [`authdns::tlds`].

fn main() -> std::process::ExitCode {
    authdns::cli::tlds::main(&authdns::tlds::TLDS2)
}

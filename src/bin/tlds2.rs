//! `tlds2`: a TLDS with tlds2's defaults; see [`authdns::tlds`].

#[path = "common/cli.rs"]
mod cli;
#[path = "common/tlds.rs"]
mod tlds;

fn main() -> std::process::ExitCode {
    tlds::main(&authdns::tlds::TLDS2)
}

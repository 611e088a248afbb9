//! Input that lies (docs/reliability.md): byte-order marks, comments and
//! hostnames that look like replies mean what they say.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use authdns_harness::*;

// A byte-order mark at the start of a table, a key file or a query file is
// not content; a key file's comments and blank lines are skipped; query
// comment lines are skipped whatever bytes they hold.
#[test]
fn files_with_a_byte_order_mark_or_comments_mean_what_they_say() {
    let dir = scratch_dir("bom");
    let system = System::start_with(
        "\u{feff}Amazon.org\t94.5.6.7\tA\n",
        "\u{feff}# tlds1's key, shared with its clients\n\nk1234\n",
        "google.com\t142.250.80.46\tA\n",
        "k5678\n",
        &dir,
    );
    let queries = "\u{feff}k1234 alpha Amazon.org\n# \u{1} control \u{7f} and \u{85} in a comment\n  #\tk5678 x google.com\nk5678 beta google.com\n";
    let mut file = queries.as_bytes().to_vec();
    file.extend_from_slice(b"# not UTF-8: \xff\xfe\n");
    let input = dir.join("queries.bin");
    std::fs::write(&input, &file).unwrap();
    let output = dir.join("out.txt");
    let args = client_args("127.0.0.1", system.auth.port(), &input, &output);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = run_to_end("client", &args, &dir);
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "Amazon.org 94.5.6.7 A\ngoogle.com 142.250.80.46 A\n"
    );
}

// A hostname may begin with `Error:`: a server error is `Error: ` with a
// space, which no hostname holds.
#[test]
fn hostnames_that_begin_with_error_are_hostnames() {
    for window in ["1", "64"] {
        let dir = scratch_dir("error-hostnames");
        let system = System::start_with(
            "Error:x\t10.0.0.1\tA\n",
            "k1234\n",
            "b.example\t10.0.0.2\tA\n",
            "k5678\n",
            &dir,
        );
        let run = run_client(
            &dir,
            system.auth.port(),
            "k1234 alpha Error:foo\nk1234 beta Error:x\n",
            &["--window", window],
        );
        assert!(run.status.success(), "window {window}: {run:?}");
        assert_eq!(
            run.output.unwrap(),
            ["Error:foo - Error:HOST NOT FOUND", "Error:x 10.0.0.1 A"],
            "window {window}"
        );
    }
}

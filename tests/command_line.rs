//! Command-line behaviour: help, usage errors, and start-up failures that
//! must be one clear line naming the file, address or flag at fault.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a test: a panic here is a failed test"
)]

use std::net::TcpListener;

use authdns_harness::*;

#[test]
fn help_explains_every_flag() {
    let dir = scratch_dir("help");
    let expected: [(&str, &[&str]); 4] = [
        (
            "tlds1",
            &[
                "--bind",
                "--as-port",
                "--client-port",
                "--table",
                "--key-file",
                "--max-as-connections",
                "--check",
                "--verbose",
                "--quiet",
                "[default: 5311]",
                "[default: data/tlds1.tsv]",
            ],
        ),
        (
            "tlds2",
            &[
                "--bind",
                "--as-port",
                "--client-port",
                "--table",
                "--key-file",
                "[default: 5321]",
                "[default: data/key2.txt]",
            ],
        ),
        (
            "as_server",
            &[
                "--bind",
                "--port",
                "--tlds1-host",
                "--tlds1-as-port",
                "--tlds1-client-port",
                "--tlds2-host",
                "--tlds2-as-port",
                "--tlds2-client-port",
                "--tlds-links",
                "--timeout",
                "--verbose",
                "[default: 5300]",
            ],
        ),
        (
            "client",
            &[
                "--as-host",
                "--as-port",
                "--input",
                "--output",
                "--quiet",
                "--key",
                "--challenge",
                "[HOSTNAME]...",
                "default: RESOLVED.txt",
            ],
        ),
    ];
    for (program, flags) in expected {
        let run = run_to_end(program, &["--help"], &dir);
        assert!(run.status.success(), "{program}: {run:?}");
        for flag in flags {
            assert!(
                run.stdout.contains(flag),
                "{program} --help lacks {flag}:\n{}",
                run.stdout
            );
        }
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = scratch_dir("usage");
    for (program, args) in [
        ("client", &["--no-such-flag"][..]),
        ("as_server", &["--port", "99999"][..]),
        ("tlds1", &["--as-port", "x"][..]),
        ("client", &["--window", "0"][..]),
        ("as_server", &["--tlds-links", "0"][..]),
        ("as_server", &["--timeout", "0"][..]),
    ] {
        let run = run_to_end(program, args, &dir);
        assert_eq!(run.status.code(), Some(2), "{program} {args:?}: {run:?}");
    }
}

/// Runs `program` expecting it to fail at start: exit 1, one line on stderr.
fn fails_at_start(program: &str, args: &[&str]) -> String {
    let dir = scratch_dir("startup");
    let run = run_to_end(program, args, &dir);
    assert_eq!(run.status.code(), Some(1), "{program} {args:?}: {run:?}");
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "not one line: {:?}",
        run.stderr
    );
    run.stderr
}

fn tlds_args<'a>(table: &'a str, key: &'a str, port: &'a str) -> Vec<&'a str> {
    vec![
        "--bind",
        "127.0.0.1",
        "--as-port",
        port,
        "--client-port",
        "0",
        "--table",
        table,
        "--key-file",
        key,
    ]
}

// Each message is compared whole: it names its cause once, and the path,
// line, address or flag at fault.
#[test]
fn tlds_start_up_errors_name_their_cause() {
    let dir = scratch_dir("tlds-errors");
    let good_table = write_file(&dir, "good.tsv", "a.com\t1.2.3.4\tA\n");
    let good_key = write_file(&dir, "key.txt", "s3cret-key\n");
    let (table, key) = (good_table.to_str().unwrap(), good_key.to_str().unwrap());
    let fails = |program: &str, table: &str, key: &str, port: &str| {
        logged(&fails_at_start(program, &tlds_args(table, key, port))).join("\n")
    };

    let missing = dir.join("missing.tsv");
    assert_eq!(
        fails("tlds1", missing.to_str().unwrap(), key, "0"),
        format!(
            "ERROR tlds1: cannot read table {}: No such file or directory (os error 2)",
            missing.display()
        )
    );

    let bad = write_file(
        &dir,
        "bad.tsv",
        "# header\na.com\t1.2.3.4\tA\nb.com 300.1.1.1 A\n",
    );
    assert_eq!(
        fails("tlds2", bad.to_str().unwrap(), key, "0"),
        format!(
            "ERROR tlds2: {}:3: flag A needs an IPv4 address, found '300.1.1.1'",
            bad.display()
        )
    );

    let dup = write_file(&dir, "dup.tsv", "a.com 1.1.1.1 A\nA.COM. 2.2.2.2 A\n");
    assert_eq!(
        fails("tlds1", dup.to_str().unwrap(), key, "0"),
        format!(
            "ERROR tlds1: {}:2: hostname 'A.COM' is listed twice (first on line 1)",
            dup.display()
        )
    );

    let missing_key = dir.join("missing.key");
    assert_eq!(
        fails("tlds1", table, missing_key.to_str().unwrap(), "0"),
        format!(
            "ERROR tlds1: cannot read key file {}: No such file or directory (os error 2)",
            missing_key.display()
        )
    );

    let empty_key = write_file(&dir, "empty.key", "\n  \n# the key goes here\n");
    assert_eq!(
        fails("tlds1", table, empty_key.to_str().unwrap(), "0"),
        format!(
            "ERROR tlds1: key file {} holds no key (every line is blank or a comment)",
            empty_key.display()
        )
    );

    let spaced_key = write_file(&dir, "spaced.key", "# tlds1's key\ns3cret key\n");
    assert_eq!(
        fails("tlds1", table, spaced_key.to_str().unwrap(), "0"),
        format!(
            "ERROR tlds1: {}:2: the key contains whitespace",
            spaced_key.display()
        )
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    assert_eq!(
        fails("tlds1", table, key, &port),
        format!(
            "ERROR tlds1: cannot listen on 127.0.0.1:{port} (--bind/--as-port): \
             Address already in use (os error 98)"
        )
    );
}

// Limits that could not work are refused at start, naming the flag and
// the values it accepts.
#[test]
fn impossible_limits_are_refused_naming_the_flag_and_range() {
    let dir = scratch_dir("limits");
    let seconds = "must be a number of seconds from 0.001 to 1000000";
    for (program, flag, value, reason) in [
        ("tlds1", "--max-connections", "0", "0 is not in 1..=1000000"),
        (
            "as_server",
            "--max-connections",
            "0",
            "0 is not in 1..=1000000",
        ),
        ("tlds2", "--idle-timeout", "0", seconds),
        ("as_server", "--timeout", "0.0000001", seconds),
        ("client", "--timeout", "inf", seconds),
        ("as_server", "--idle-timeout", "NaN", seconds),
        ("client", "--timeout", "-1e-3", seconds),
    ] {
        let run = run_to_end(program, &[&format!("{flag}={value}")], &dir);
        assert_eq!(run.status.code(), Some(2), "{program} {flag}={value}");
        let first = run.stderr.lines().next().unwrap_or_default();
        let value_name = if flag == "--max-connections" {
            "N"
        } else {
            "SECS"
        };
        assert_eq!(
            first,
            format!("error: invalid value '{value}' for '{flag} <{value_name}>': {reason}"),
        );
    }
}

#[test]
fn as_server_port_in_use_is_named() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let message = fails_at_start("as_server", &["--bind", "127.0.0.1", "--port", &port]);
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("--port"), "{message}");
}

#[test]
fn client_start_up_errors_name_their_cause() {
    let dir = scratch_dir("client-errors");
    let missing = dir.join("nope.txt");
    let message = fails_at_start(
        "client",
        &[
            "--input",
            missing.to_str().unwrap(),
            "--output",
            dir.join("out").to_str().unwrap(),
        ],
    );
    assert!(message.contains(missing.to_str().unwrap()), "{message}");

    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port = closed.to_string();
    let input = write_file(&dir, "q.txt", "k c host.example\n");
    let previous = write_file(&dir, "previous.txt", "earlier results\n");
    let args = client_args("127.0.0.1", closed, &input, &previous);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let message = fails_at_start("client", &args);
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert_eq!(
        std::fs::read_to_string(&previous).unwrap(),
        "earlier results\n"
    );
}

/// `program` run by `sh` after `ulimit` with `limit` (e.g. `-n 100`).
fn limited(limit: &str, program: &str, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit {limit} && exec \"$0\" \"$@\""))
        .arg(bin(program))
        .args(args);
    command
}

// A server raises its soft open-file limit to the hard one. Limits left at
// their defaults that even that cannot cover are lowered to fit, the
// largest first (the AS port keeps its 64), with one warning naming the
// limit and the value chosen; a limit given on the
// command line that cannot fit is a usage error (exit 2) naming the flag.
#[test]
fn servers_fit_their_connection_limits_to_the_open_file_limit() {
    let dir = scratch_dir("nofile");
    let table = write_file(&dir, "t.tsv", "a.example 10.0.0.1 A\n");
    let key = write_file(&dir, "k.txt", "k\n");
    let (table, key) = (table.to_str().unwrap(), key.to_str().unwrap());
    let args = tlds_args(table, key, "0");

    // Default flags under a hard limit of 1024, as in some containers.
    let tlds = Server::start_command("tlds1", limited("-n 1024", "tlds1", &args));
    let mut peer = LineClient::connect(tlds.addrs[1]);
    assert_eq!(
        peer.ask("a.example").as_deref(),
        Some("a.example 10.0.0.1 A")
    );
    let warnings: Vec<String> = logged(&tlds.stderr())
        .into_iter()
        .filter(|line| line.starts_with("WARN"))
        .collect();
    assert_eq!(
        warnings,
        [
            "WARN tlds1: the open-file limit is 1024: serving --max-connections 928 (default \
          8192) to fit it (raise it with ulimit -n for more)"
        ]
    );
    let auth = Server::start_command(
        "as_server",
        limited(
            "-n 1024",
            "as_server",
            &["--bind", "127.0.0.1", "--port", "0"],
        ),
    );
    let mut peer = LineClient::connect(auth.addrs[0]);
    assert!(peer.ask("not a request").unwrap().starts_with("Error: "));
    assert!(
        auth.stderr().contains(
            "WARN as_server: the open-file limit is 1024: serving --max-connections 988 \
             (default 8192) to fit it"
        ),
        "{}",
        auth.stderr()
    );

    // The same limits given explicitly: refused, naming the flag.
    let explicit = [&args[..], &["--max-connections", "1024"]].concat();
    let run = limited("-n 1024", "tlds1", &explicit).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stderr).starts_with(
            "error: --max-connections 1024 needs about 1056 file descriptors, but the \
             open-file limit is 1024"
        ),
        "{run:?}"
    );
    let run = limited(
        "-n 1024",
        "as_server",
        &["--port", "0", "--max-connections", "1024"],
    )
    .output()
    .unwrap();
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stderr).starts_with("error: --max-connections 1024 needs"),
        "{run:?}"
    );

    // Only the soft limit is low: the server raises it and starts as asked.
    let tlds = Server::start_command("tlds1", limited("-S -n 100", "tlds1", &args));
    let mut peer = LineClient::connect(tlds.addrs[1]);
    assert_eq!(
        peer.ask("a.example").as_deref(),
        Some("a.example 10.0.0.1 A")
    );
    assert!(!tlds.stderr().contains("WARN"), "{}", tlds.stderr());

    // Limits that fit start, and past them a connection hears busy while
    // every admitted one is in use (none idle long enough to be closed).
    let small = [
        &args[..],
        &["--max-connections", "20", "--max-as-connections", "8"],
    ]
    .concat();
    let tlds = Server::start_command("tlds1", limited("-n 100", "tlds1", &small));
    let mut admitted: Vec<LineClient> = (0..20)
        .map(|_| LineClient::connect(tlds.addrs[1]))
        .collect();
    for _ in 0..10 {
        for peer in &mut admitted {
            assert_eq!(
                peer.ask("a.example").as_deref(),
                Some("a.example 10.0.0.1 A")
            );
        }
        let mut extra = LineClient::connect(tlds.addrs[1]);
        assert_eq!(extra.reply().as_deref(), Some("Error: server busy"));
    }
}

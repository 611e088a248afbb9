//! `client`: resolves a query file through the AS and the TLDS servers; see
//! [`authdns::client`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use authdns::cli;
use authdns::client::{self, AtomicFile, Echo, QueryLines, Results, Settings};
use authdns::connection;
use clap::Parser;
use clap_verbosity_flag::{InfoLevel, Verbosity};

/// Resolves hostnames through the authentication server and the TLDS servers.
///
/// Reads `key challenge hostname` lines, authenticates each with
/// HMAC-MD5(key, challenge) at the AS, asks the TLDS the AS names, and writes
/// one result per query, in input order, to stdout and to the output file.
/// Or resolves HOSTNAMEs given on the command line, dig-style, with one key:
/// `client --key k1234 Amazon.org google.com`. A summary line goes to stderr
/// at the end.
///
/// Exit status: 0 when every query was answered (found, not found, or no
/// match), 1 when any failed, 2 for usage errors, 130 or 143 when stopped by
/// SIGINT or SIGTERM (the previous output file is then left as it was).
#[derive(Debug, Parser)]
#[command(
    name = "client",
    version,
    mut_arg("verbose", |arg| arg.help(
        "More logging: -v a line per connection, -vv a line per query (where it went, what came back)"
    )),
    mut_arg("quiet", |arg| arg.help(
        "Less: -q turns off the echo on stdout and the summary (errors still show)"
    )),
    after_help = "Examples:\n  \
                  client --as-host 10.0.0.1 --input queries.txt --output results.txt\n  \
                  client --key k1234 Amazon.org google.com\n  \
                  generate-queries | client --input - --output -"
)]
struct Args {
    /// Host of the authentication server
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    as_host: String,

    /// Port of the authentication server
    #[arg(long, value_name = "PORT", default_value_t = 5300)]
    as_port: u16,

    /// Hostnames to resolve one-off, with --key, instead of a query file;
    /// results go to stdout (and to --output, if given)
    #[arg(value_name = "HOSTNAME", requires = "key")]
    hostnames: Vec<String>,

    /// The key for the HOSTNAMEs on the command line
    #[arg(long, value_name = "KEY")]
    key: Option<String>,

    /// The challenge for the HOSTNAMEs (default: a fresh random one for each)
    #[arg(long, value_name = "CHALLENGE", requires = "key")]
    challenge: Option<String>,

    /// Query file: `key challenge hostname` per line; - reads standard input
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with = "hostnames",
        default_value = "data/hns.txt"
    )]
    input: PathBuf,

    /// Result file, replaced atomically when the run ends; - writes stdout
    /// only [default: RESOLVED.txt, or none for HOSTNAMEs]
    #[arg(long, value_name = "PATH")]
    output: Option<PathBuf>,

    /// Most queries in flight at once (1: strictly one at a time)
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    window: u32,

    /// Prove the key to each TLDS before asking it (for TLDS servers started
    /// with --require-proof)
    #[arg(long)]
    prove: bool,

    /// Seconds to wait for any server to accept a connection or to answer
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = cli::seconds)]
    timeout: Duration,

    #[command(flatten)]
    verbosity: Verbosity<InfoLevel>,
}

/// The client program's results: the file (if any), and an echo on stdout
/// (handed on whenever the pipeline waits, so a person watching sees
/// results as they come) that the file never depends on.
struct Output {
    file: Option<AtomicFile>,
    echo: Option<Echo>,
}

impl Results for Output {
    fn line(&mut self, line: &str) -> io::Result<()> {
        if let Some(echo) = &mut self.echo {
            echo.line(line);
        }
        match &mut self.file {
            Some(file) => file.write_line(line),
            None => Ok(()),
        }
    }

    fn idle(&mut self) -> io::Result<()> {
        if let Some(echo) = &mut self.echo {
            echo.flush();
        }
        Ok(())
    }
}

/// The echo of results on stdout, unless `--quiet`.
fn echo(args: &Args, file: Option<&Path>) -> Result<Option<Echo>> {
    // `-q` quiets everything but the output file and errors: the echo,
    // the summary, warnings.
    if args.verbosity.log_level_filter() < log::LevelFilter::Info {
        return Ok(None);
    }
    let goes_on = file.map_or_else(
        || "nothing else shows the results".to_owned(),
        |file| format!("results go on to {} only", file.display()),
    );
    let echo = Echo::start(io::stdout(), move |err| {
        log::warn!("stdout: {err}; {goes_on}");
    })
    .context("cannot start echoing results")?;
    Ok(Some(echo))
}

/// Where the queries come from: the HOSTNAMEs on the command line, standard
/// input, or the query file.
fn queries(args: &Args) -> Result<QueryLines<Box<dyn BufRead + Send>>> {
    let source: Box<dyn BufRead + Send> = if let Some(key) = &args.key {
        let mut lines = String::new();
        for hostname in &args.hostnames {
            let challenge = match &args.challenge {
                Some(challenge) => challenge.clone(),
                None => fresh_challenge()?,
            };
            lines.push_str(&format!("{key} {challenge} {hostname}\n"));
        }
        Box::new(Cursor::new(lines.into_bytes()))
    } else if args.input.as_os_str() == "-" {
        Box::new(BufReader::with_capacity(64 * 1024, io::stdin()))
    } else {
        let input = File::open(&args.input)
            .with_context(|| format!("cannot read --input {}", args.input.display()))?;
        Box::new(BufReader::with_capacity(64 * 1024, input))
    };
    Ok(QueryLines::new(source))
}

/// 64 random bits from the operating system, as 16 hex digits.
fn fresh_challenge() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|err| anyhow::anyhow!("no random challenge: {err}"))?;
    Ok(hex::encode(bytes))
}

/// The output file: `--output` unless it is `-`; by default RESOLVED.txt
/// for a query file and none for HOSTNAMEs.
fn output_path(args: &Args) -> Option<PathBuf> {
    match &args.output {
        Some(path) if path.as_os_str() == "-" => None,
        Some(path) => Some(path.clone()),
        None if args.key.is_some() => None,
        None => Some(PathBuf::from("RESOLVED.txt")),
    }
}

/// `3.1 ms`, `2.45 s`.
fn elapsed(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 1.0 {
        format!("{:.1} ms", secs * 1000.0)
    } else {
        format!("{secs:.2} s")
    }
}

/// The temporary output file while a run is in progress: a stop signal
/// removes it, so the previous output stays as it was.
type InProgress = Arc<Mutex<Option<PathBuf>>>;

fn stop_on_signals(in_progress: &InProgress) -> Result<()> {
    let in_progress = Arc::clone(in_progress);
    cli::on_stop_signal(move |signal| {
        // Holding the lock keeps a commit from starting meanwhile.
        let temp = in_progress.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(temp) = &*temp {
            let _ = std::fs::remove_file(temp);
        }
        std::process::exit(128 + signal);
    })
}

fn start() -> Result<ExitCode> {
    let started = Instant::now();
    let args = Args::parse();
    cli::start_logging("client", &args.verbosity);
    let in_progress = InProgress::default();
    stop_on_signals(&in_progress)?;
    let mut queries = queries(&args)?;
    let has_query = queries
        .has_query()
        .with_context(|| format!("cannot read --input {}", args.input.display()))?;
    // The output is checked, and its temporary file made, before anything
    // is sent.
    let output_path = output_path(&args);
    let file = match &output_path {
        Some(path) => {
            let file = AtomicFile::create(path)
                .with_context(|| format!("cannot write --output {}", path.display()))?;
            *in_progress.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(file.temp_path().to_owned());
            Some(file)
        }
        None => None,
    };
    let as_name = format!("{}:{}", args.as_host, args.as_port);
    let as_stream = if has_query {
        let addrs = cli::resolve(&args.as_host, args.as_port, "--as-host/--as-port")?;
        let stream = connection::connect(&addrs, args.timeout).with_context(|| {
            format!("cannot connect to the AS at {as_name} (--as-host/--as-port)")
        })?;
        log::debug!("connected to the AS at {as_name}");
        Some(stream)
    } else {
        None
    };
    let mut output = Output {
        file,
        echo: echo(&args, output_path.as_deref())?,
    };
    let settings = Settings {
        as_name,
        window: args.window as usize,
        timeout: args.timeout,
        prove: args.prove,
    };
    let summary = client::resolve(queries, as_stream, &settings, &mut output)?;
    // The file is committed before the echo is waited for: a reader of
    // stdout that is slow (or paused) never holds the results back.
    let Output { file, echo } = output;
    if let (Some(file), Some(path)) = (file, &output_path) {
        let mut in_progress = in_progress.lock().unwrap_or_else(PoisonError::into_inner);
        file.commit()
            .with_context(|| format!("cannot write --output {}", path.display()))?;
        *in_progress = None;
    }
    if let Some(echo) = echo {
        echo.close();
    }
    log::info!("{summary} in {}", elapsed(started.elapsed()));
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    cli::report("client", start())
}

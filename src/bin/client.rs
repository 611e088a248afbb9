//! `client`: resolves a query file through the AS and the TLDS servers; see
//! [`authdns::client`].

#[path = "common/cli.rs"]
mod cli;

use std::fs::File;
use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use authdns::client::{self, AtomicFile, Echo, QueryLines, Results, Settings};
use authdns::connection;
use clap::Parser;
use clap_verbosity_flag::{InfoLevel, Verbosity};

/// Resolves hostnames through the authentication server and the TLDS servers.
///
/// Reads `key challenge hostname` lines, authenticates each with
/// HMAC-MD5(key, challenge) at the AS, asks the TLDS the AS names, and writes
/// one result per query, in input order, to stdout and to the output file.
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
    after_help = "Example, with the AS on another machine:\n  \
                  client --as-host 10.0.0.1 --input queries.txt --output results.txt"
)]
struct Args {
    /// Host of the authentication server
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    as_host: String,

    /// Port of the authentication server
    #[arg(long, value_name = "PORT", default_value_t = 5300)]
    as_port: u16,

    /// Query file: `key challenge hostname` per line
    #[arg(long, value_name = "PATH", default_value = "data/hns.txt")]
    input: PathBuf,

    /// Result file, replaced atomically when the run ends
    #[arg(long, value_name = "PATH", default_value = "RESOLVED.txt")]
    output: PathBuf,

    /// Most queries in flight at once (1: strictly one at a time)
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    window: u32,

    /// Seconds to wait for any server to accept a connection or to answer
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = cli::seconds)]
    timeout: Duration,

    #[command(flatten)]
    verbosity: Verbosity<InfoLevel>,
}

/// The client program's results: the file, and an echo on stdout (handed
/// on whenever the pipeline waits, so a person watching sees results as
/// they come) that the file never depends on.
struct Output {
    file: AtomicFile,
    echo: Option<Echo>,
}

impl Results for Output {
    fn line(&mut self, line: &str) -> io::Result<()> {
        if let Some(echo) = &mut self.echo {
            echo.line(line);
        }
        self.file.write_line(line)
    }

    fn idle(&mut self) -> io::Result<()> {
        if let Some(echo) = &mut self.echo {
            echo.flush();
        }
        Ok(())
    }
}

/// The echo of results on stdout, unless `--quiet`.
fn echo(args: &Args) -> Result<Option<Echo>> {
    // `-q` quiets everything but the output file and errors: the echo,
    // the summary, warnings.
    if args.verbosity.log_level_filter() < log::LevelFilter::Info {
        return Ok(None);
    }
    let output = args.output.display().to_string();
    let echo = Echo::start(io::stdout(), move |err| {
        log::warn!("stdout: {err}; results go on to {output} only");
    })
    .context("cannot start echoing results")?;
    Ok(Some(echo))
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
    let args = Args::parse();
    cli::start_logging("client", &args.verbosity);
    let in_progress = InProgress::default();
    stop_on_signals(&in_progress)?;
    let input = File::open(&args.input)
        .with_context(|| format!("cannot read --input {}", args.input.display()))?;
    let mut queries = QueryLines::new(BufReader::with_capacity(64 * 1024, input));
    let has_query = queries
        .has_query()
        .with_context(|| format!("cannot read --input {}", args.input.display()))?;
    // The output is checked, and its temporary file made, before anything
    // is sent.
    let file = AtomicFile::create(&args.output)
        .with_context(|| format!("cannot write --output {}", args.output.display()))?;
    *in_progress.lock().unwrap_or_else(PoisonError::into_inner) = Some(file.temp_path().to_owned());
    let as_name = format!("{}:{}", args.as_host, args.as_port);
    let as_stream = if has_query {
        let addrs = cli::resolve(&args.as_host, args.as_port, "--as-host/--as-port")?;
        let stream = connection::connect(&addrs, args.timeout).with_context(|| {
            format!("cannot connect to the AS at {as_name} (--as-host/--as-port)")
        })?;
        Some(stream)
    } else {
        None
    };
    let mut output = Output {
        file,
        echo: echo(&args)?,
    };
    let settings = Settings {
        as_name,
        window: args.window as usize,
        timeout: args.timeout,
    };
    let summary = client::resolve(queries, as_stream, &settings, &mut output)?;
    // The file is committed before the echo is waited for: a reader of
    // stdout that is slow (or paused) never holds the results back.
    let Output { file, echo } = output;
    {
        let mut in_progress = in_progress.lock().unwrap_or_else(PoisonError::into_inner);
        file.commit()
            .with_context(|| format!("cannot write --output {}", args.output.display()))?;
        *in_progress = None;
    }
    if let Some(echo) = echo {
        echo.finish();
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    cli::report("client", start())
}

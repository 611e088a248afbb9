//! `as_server`: the authentication server; see [`authdns::auth_server`].

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use authdns::auth_server::{self, Config, TldsEndpoint};
use authdns::cli;
use authdns::cli::descriptors::{self, ConnectionLimit};
use clap::{CommandFactory, FromArgMatches, Parser};
use clap_verbosity_flag::{InfoLevel, Verbosity};

/// The authentication server: tells each client which TLDS its key belongs to.
///
/// For each client request `challenge digest`, sends the challenge to both
/// TLDS servers at once, compares each one's HMAC-MD5 digest with the
/// client's in constant time, and replies with the matching server's
/// `--tldsN-host --tldsN-client-port`, or `No Match Found`. It holds no keys
/// and no records, and it may start before the TLDS servers: it connects
/// (again) whenever a request needs them. Its connections to each TLDS
/// (`--tlds-links`) are shared by all its clients. SIGINT or SIGTERM stops it
/// cleanly: it answers what it has read, then exits 0.
#[derive(Debug, Parser)]
#[command(
    name = "as_server",
    version,
    mut_arg("verbose", |arg| arg.help(
        "More logging: -v a line per client connection, -vv a line per request"
    )),
    after_help = "Example, with the TLDS servers on two other machines:\n  \
                  as_server --tlds1-host 10.0.0.2 --tlds2-host 10.0.0.3"
)]
struct Args {
    /// Address to listen on for clients (0.0.0.0: every IPv4 interface)
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    bind: String,

    /// Port clients connect to (0: any free port)
    #[arg(long, value_name = "PORT", default_value_t = 5300)]
    port: u16,

    /// Host of tlds1; also what clients are told to connect to
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    tlds1_host: String,

    /// tlds1's AS port, where challenges are sent
    #[arg(long, value_name = "PORT", default_value_t = 5311)]
    tlds1_as_port: u16,

    /// tlds1's client port, which clients are told to use
    #[arg(long, value_name = "PORT", default_value_t = 5312)]
    tlds1_client_port: u16,

    /// Host of tlds2; also what clients are told to connect to
    #[arg(long, value_name = "HOST", default_value = "localhost")]
    tlds2_host: String,

    /// tlds2's AS port, where challenges are sent
    #[arg(long, value_name = "PORT", default_value_t = 5321)]
    tlds2_as_port: u16,

    /// tlds2's client port, which clients are told to use
    #[arg(long, value_name = "PORT", default_value_t = 5322)]
    tlds2_client_port: u16,

    /// Connections kept open to each TLDS, shared by every client. Two keep
    /// both cores of a two-core machine busy under many clients; more may
    /// help where there are more cores
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    tlds_links: u16,

    /// Seconds to wait for a TLDS to accept a connection or to answer one
    /// challenge; past it the TLDS is marked down. Keep it below the clients'
    /// --timeout (5 s), so they hear which TLDS failed rather than time out
    #[arg(long, value_name = "SECS", default_value = "2", value_parser = cli::seconds)]
    timeout: Duration,

    /// Most client connections served at once; at it, a newcomer closes the
    /// connection idle longest (a second at least), or hears `Error: server busy`.
    /// Left at its default, it is lowered to fit the open-file limit
    #[arg(long, value_name = "N", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,

    /// Close a client connection that sends nothing for this many seconds
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = cli::seconds)]
    idle_timeout: Duration,

    #[command(flatten)]
    metrics: cli::MetricsArgs,

    #[command(flatten)]
    verbosity: Verbosity<InfoLevel>,
}

/// The TLDS named `name`, its AS port resolved now.
fn endpoint(
    name: &'static str,
    host: &str,
    as_port: u16,
    client_port: u16,
) -> Result<TldsEndpoint> {
    let flags = format!("--{name}-host/--{name}-as-port");
    let as_addrs = cli::resolve(host, as_port, &flags)?;
    Ok(TldsEndpoint::new(
        name,
        host.to_owned(),
        as_port,
        client_port,
        as_addrs,
    ))
}

fn start() -> Result<ExitCode> {
    let mut command = Args::command();
    let matches = command.clone().get_matches();
    let mut args = Args::from_arg_matches(&matches)?;
    cli::start_logging("as_server", &args.verbosity);
    // Each client connection, and each link to a TLDS, is one descriptor.
    let mut limits = [ConnectionLimit::of(
        &matches,
        "max_connections",
        "--max-connections",
        args.max_connections,
    )];
    if let Err(unfit) = descriptors::fit(&mut limits, 2 * u64::from(args.tlds_links))? {
        descriptors::refuse(unfit, &mut command)?;
    }
    let [max_connections] = limits.map(|limit| limit.value);
    args.max_connections = max_connections;
    let tlds = [
        endpoint(
            "tlds1",
            &args.tlds1_host,
            args.tlds1_as_port,
            args.tlds1_client_port,
        )?,
        endpoint(
            "tlds2",
            &args.tlds2_host,
            args.tlds2_as_port,
            args.tlds2_client_port,
        )?,
    ];
    let listener = cli::bind(&args.bind, args.port, "--bind/--port")?;
    let metrics = args.metrics.bind()?;
    log::info!(
        "listening on {}; {} (clients sent to port {}), {} (clients sent to port {}){}",
        cli::local(&listener),
        tlds[0].describe(),
        tlds[0].client_port,
        tlds[1].describe(),
        tlds[1].client_port,
        cli::metrics_line(metrics.as_ref()),
    );
    let config = Config {
        tlds,
        timeout: args.timeout,
        links_per_tlds: usize::from(args.tlds_links),
        max_connections: args.max_connections as usize,
        idle_timeout: args.idle_timeout,
    };
    let (stopper, signal) = cli::StopSignal::install()?;
    auth_server::run(config, listener, metrics, &stopper).context("cannot serve")?;
    log::info!("stopped on {}", signal.name());
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    cli::report("as_server", start())
}

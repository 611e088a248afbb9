//! The command line of `tlds1` and `tlds2`: one definition, each program's
//! defaults filled in from [`Defaults`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::dns;
use crate::key::Key;
use crate::metrics::{ServerMetrics, TableMetrics};
use crate::table::Table;
use crate::tlds::{self, Config, Defaults, DnsConfig, Listeners, Records};
use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser};
use clap_verbosity_flag::{InfoLevel, Verbosity};
use hickory_proto::rr::Name;
use ipnet::IpNet;

use crate::cli;
use crate::cli::descriptors::{self, ConnectionLimit};

/// A top-level domain server: signs challenges for the authentication server
/// and answers hostname lookups for clients.
#[derive(Debug, Parser)]
#[command(
    version,
    mut_arg("verbose", |arg| arg.help(
        "More logging: -v a line per connection, -vv a line per request"
    ))
)]
pub struct Args {
    /// Address to listen on, for both ports (0.0.0.0: every IPv4 interface)
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub bind: String,

    /// Port the authentication server sends challenges to (0: any free port)
    #[arg(long, value_name = "PORT")]
    pub as_port: u16,

    /// Port clients send hostnames to (0: any free port)
    #[arg(long, value_name = "PORT")]
    pub client_port: u16,

    /// Record table: `hostname address flag` per line, tab- or space-separated
    #[arg(long, value_name = "PATH")]
    pub table: PathBuf,

    /// File whose first non-blank line is this server's secret key
    #[arg(long, value_name = "PATH")]
    pub key_file: PathBuf,

    /// Serve the AS port only to this peer address or range, e.g. 10.0.0.1 or
    /// 10.0.0.0/8 (repeatable; default: anyone). An IPv4 peer matches whether it
    /// arrives as IPv4 or, on a listener bound to ::, as IPv4-mapped IPv6.
    /// Recommended whenever the AS port is reachable from other machines
    #[arg(long, value_name = "IP[/PREFIX]", value_parser = cli::ip_range)]
    pub as_allow: Vec<IpNet>,

    /// Most connections served at once on the client port; at it, a newcomer closes
    /// the connection idle longest (a second at least), or hears `Error: server busy`.
    /// Left at its default, it is lowered to fit the open-file limit
    #[arg(long, value_name = "N", default_value_t = 8192,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Most connections served at once on the AS port, a budget of its own so
    /// that clients can never take the AS's slots (the AS holds --tlds-links).
    /// Left at its default, it is lowered to fit the open-file limit
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_as_connections: u32,

    /// Close a connection that sends nothing for this many seconds
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = cli::seconds)]
    pub idle_timeout: Duration,

    /// Answer only clients that first prove they hold this server's key: each
    /// client-port connection begins with `PROOF <nonce>` from the server, and
    /// the client's `PROOF <HMAC-MD5(key, "authdns proof" NUL nonce)>`; on the
    /// DNS port, only queries whose TSIG verifies (unsigned ones are REFUSED)
    #[arg(long)]
    pub require_proof: bool,

    /// Also answer the table as DNS, over UDP and TCP on this port (0: any free
    /// port), signed with TSIG hmac-md5 under this server's key. Off unless given
    #[arg(long, value_name = "PORT", help_heading = "DNS")]
    pub dns_port: Option<u16>,

    /// The zone the DNS port is authoritative for; names outside it are REFUSED
    #[arg(long, value_name = "NAME", default_value = ".", value_parser = dns::parse_name,
          help_heading = "DNS")]
    pub dns_zone: Name,

    /// The TSIG key's name; its secret is the key file's key, so
    /// `dig -y hmac-md5:<NAME>:<the key in base64>` asks with it
    #[arg(long, value_name = "NAME", value_parser = dns::parse_name, help_heading = "DNS")]
    pub dns_key_name: Name,

    /// TTL of DNS answers and of the SOA in negative answers, in seconds
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(0..=i32::MAX as i64),
          help_heading = "DNS")]
    pub dns_ttl: u32,

    /// Most TCP connections served at once on the DNS port (a budget of its own).
    /// Left at its default, it is lowered to fit the open-file limit
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000),
          help_heading = "DNS")]
    pub max_dns_connections: u32,

    /// Threads answering DNS over UDP, each one query at a time [default: one per CPU]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024),
          help_heading = "DNS")]
    pub dns_threads: Option<u32>,

    /// Load and check the table and the key as serving would, print what was
    /// loaded (or every problem, as path:line: reason), and exit; binds nothing
    #[arg(long)]
    pub check: bool,

    #[command(flatten)]
    pub metrics: cli::MetricsArgs,

    #[command(flatten)]
    pub verbosity: Verbosity<InfoLevel>,
}

impl Args {
    /// The command line of one TLDS program, with that program's defaults.
    pub fn command_for(defaults: &Defaults) -> clap::Command {
        let with_default =
            |value: &'static str| move |arg: clap::Arg| arg.default_value(value).required(false);
        Args::command()
            .name(defaults.name)
            .bin_name(defaults.name)
            .about(format!(
                "{}: a top-level domain server of authdns.\n\n\
                 Signs challenges with its key for the authentication server (AS port) \
                 and answers hostname lookups from its table (client port). Both the table \
                 and the key are read at start, where a bad line stops the server with \
                 `path:line: reason`, and again on SIGHUP, where a bad file keeps the \
                 old table and key serving. SIGINT or SIGTERM stops it cleanly: it answers what \
                 it has read, then exits 0.",
                defaults.name
            ))
            .after_help(format!(
                "Example, letting only the AS at 10.0.0.1 ask for digests:\n  \
                 {} --as-allow 10.0.0.1",
                defaults.name
            ))
            .mut_arg("as_port", with_default(defaults.as_port))
            .mut_arg("client_port", with_default(defaults.client_port))
            .mut_arg("table", with_default(defaults.table))
            .mut_arg("key_file", with_default(defaults.key_file))
            .mut_arg("dns_key_name", with_default(defaults.dns_key_name))
    }
}

fn start(defaults: &Defaults) -> Result<ExitCode> {
    let mut command = Args::command_for(defaults);
    let matches = command.clone().get_matches();
    let mut args = Args::from_arg_matches(&matches)?;
    cli::start_logging(defaults.name, &args.verbosity);
    if args.check {
        return Ok(check(&args.table, &args.key_file));
    }
    let mut limits = vec![
        ConnectionLimit::of(
            &matches,
            "max_connections",
            "--max-connections",
            args.max_connections,
        ),
        ConnectionLimit::of(
            &matches,
            "max_as_connections",
            "--max-as-connections",
            args.max_as_connections,
        ),
    ];
    if args.dns_port.is_some() {
        limits.push(ConnectionLimit::of(
            &matches,
            "max_dns_connections",
            "--max-dns-connections",
            args.max_dns_connections,
        ));
    }
    // The DNS port's UDP socket and TCP listener.
    let fixed = if args.dns_port.is_some() { 2 } else { 0 };
    if let Err(unfit) = descriptors::fit(&mut limits, fixed)? {
        descriptors::refuse(unfit, &mut command)?;
    }
    let limit = |flag: &str| {
        limits
            .iter()
            .find(|limit| limit.flag == flag)
            .map(|limit| limit.value)
    };
    args.max_connections = limit("--max-connections").unwrap_or(args.max_connections);
    args.max_as_connections = limit("--max-as-connections").unwrap_or(args.max_as_connections);
    args.max_dns_connections = limit("--max-dns-connections").unwrap_or(args.max_dns_connections);
    let key = Key::load(&args.key_file)?;
    let table = Table::load(&args.table)?;
    let listeners = Listeners {
        as_port: cli::bind(&args.bind, args.as_port, "--bind/--as-port")?,
        client_port: cli::bind(&args.bind, args.client_port, "--bind/--client-port")?,
        dns: args
            .dns_port
            .map(|port| cli::bind_dns(&args.bind, port, "--bind/--dns-port"))
            .transpose()?,
        metrics: args.metrics.bind()?,
    };
    let dns_line = listeners.dns.as_ref().map_or_else(String::new, |dns| {
        format!(", DNS port on {} (UDP and TCP)", cli::local(&dns.tcp))
    });
    log::info!(
        "serving {} records; AS port on {}, client port on {}{dns_line}{}",
        table.len(),
        cli::local(&listeners.as_port),
        cli::local(&listeners.client_port),
        cli::metrics_line(listeners.metrics.as_ref()),
    );
    let mut metrics = ServerMetrics::new();
    let table_metrics = metrics.table();
    table_metrics.loaded(table.len(), false);
    let udp_threads = args.dns_threads.map_or_else(
        || std::thread::available_parallelism().map_or(2, usize::from),
        |threads| threads as usize,
    );
    let records = Records::new(table, &key);
    let config = Config {
        name: defaults.name,
        records: Arc::clone(&records),
        require_proof: args.require_proof,
        as_allow: args.as_allow,
        max_connections: args.max_connections as usize,
        max_as_connections: args.max_as_connections as usize,
        idle_timeout: args.idle_timeout,
        dns: args.dns_port.map(|_| DnsConfig {
            settings: dns::Settings {
                zone: args.dns_zone.clone(),
                key_name: args.dns_key_name.clone(),
                ttl: args.dns_ttl,
                require_proof: args.require_proof,
            },
            max_connections: args.max_dns_connections as usize,
            udp_threads,
        }),
        metrics,
    };
    let (stopper, signal) = cli::StopSignal::install()?;
    let (table_path, key_path) = (args.table.clone(), args.key_file.clone());
    cli::on_hangup(move || reload(&records, &table_metrics, &table_path, &key_path))?;
    tlds::run(config, listeners, &stopper).context("cannot serve")?;
    log::info!("stopped on {}", signal.name());
    Ok(ExitCode::SUCCESS)
}

/// Loads the table and the key as serving would, and reports every problem
/// in both, each as a line of its own (`path:line: reason` where there is
/// a line).
fn load_all(table_path: &Path, key_path: &Path) -> Result<(Table, Key), Vec<String>> {
    let mut problems = Vec::new();
    let table = match std::fs::read(table_path) {
        Ok(bytes) => Table::check(&bytes)
            .map_err(|errors| {
                problems.extend(errors.iter().map(|error| {
                    format!("{}:{}: {}", table_path.display(), error.line, error.kind)
                }))
            })
            .ok(),
        Err(err) => {
            problems.push(format!("cannot read table {}: {err}", table_path.display()));
            None
        }
    };
    let key = Key::load(key_path)
        .map_err(|err| problems.push(format!("{:#}", anyhow::Error::from(err))))
        .ok();
    match (table, key) {
        (Some(table), Some(key)) => Ok((table, key)),
        _ => Err(problems),
    }
}

/// `--check`: what serving would load, or every problem; binds nothing.
fn check(table_path: &Path, key_path: &Path) -> ExitCode {
    match load_all(table_path, key_path) {
        Ok((table, _key)) => {
            println!(
                "{}: {} records; {}: key ok",
                table_path.display(),
                table.len(),
                key_path.display()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            ExitCode::FAILURE
        }
    }
}

/// SIGHUP: reads both files again and serves them from the next burst on;
/// a file with a problem leaves the old ones serving.
fn reload(records: &Records, metrics: &TableMetrics, table_path: &Path, key_path: &Path) {
    match load_all(table_path, key_path) {
        Ok((table, key)) => {
            let count = table.len();
            records.replace(table, &key);
            metrics.loaded(count, true);
            log::info!("reloaded {}: serving {count} records", table_path.display());
        }
        Err(problems) => {
            for problem in problems {
                log::error!("reload: {problem}");
            }
            log::error!("reload failed: still serving the table and key loaded before");
            metrics.reload_failed();
        }
    }
}

/// The whole `tlds1`/`tlds2` program.
pub fn main(defaults: &Defaults) -> ExitCode {
    cli::report(defaults.name, start(defaults))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlds::{TLDS1, TLDS2};

    #[test]
    fn the_two_programs_differ_only_in_defaults() {
        for defaults in [TLDS1, TLDS2] {
            let matches = Args::command_for(&defaults).get_matches_from([defaults.name]);
            let args = Args::from_arg_matches(&matches).unwrap();
            assert_eq!(args.as_port.to_string(), defaults.as_port);
            assert_eq!(args.client_port.to_string(), defaults.client_port);
            assert_eq!(args.table, PathBuf::from(defaults.table));
            assert_eq!(args.key_file, PathBuf::from(defaults.key_file));
            assert_eq!(args.bind, "0.0.0.0");
        }
        let matches = Args::command_for(&TLDS1).get_matches_from([
            "tlds1",
            "--as-port",
            "0",
            "--as-allow",
            "127.0.0.1",
        ]);
        let args = Args::from_arg_matches(&matches).unwrap();
        assert_eq!(args.as_port, 0);
        assert_eq!(args.as_allow, ["127.0.0.1/32".parse::<IpNet>().unwrap()]);
    }
}

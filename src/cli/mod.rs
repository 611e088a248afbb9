//! What the four programs' command lines share: resolving and binding with
//! errors that name the flag at fault, timeouts in seconds, signals, and
//! turning a failure into one line on stderr and an exit status; and, in
//! [`tlds`], the one command line of `tlds1` and `tlds2`. The binaries under
//! `src/bin` hold only what is theirs alone.

pub mod descriptors;
pub mod tlds;

use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use std::io::Write;

use crate::server::Stopper;
use crate::tlds::DnsSockets;
use anyhow::{Context, Result, bail};
use clap_verbosity_flag::{InfoLevel, Verbosity};
use ipnet::IpNet;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Resolves `host:port`; the error names the flags the values came from.
pub fn resolve(host: &str, port: u16, flags: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}:{port} ({flags})"))?
        .collect();
    if addrs.is_empty() {
        bail!("{host}:{port} ({flags}) resolves to no address");
    }
    Ok(addrs)
}

/// Connections a listener lets wait for `accept`: std listens with 128,
/// which thousands of clients connecting at once overflow (the kernel then
/// drops their SYNs, and each retries a second or more later). The kernel
/// caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// Opens a listener, with room for [`BACKLOG`] connections waiting to be
/// accepted; port 0 picks any free port.
pub fn bind(host: &str, port: u16, flags: &str) -> Result<TcpListener> {
    let addrs = resolve(host, port, flags)?;
    let listener = TcpListener::bind(addrs.as_slice())
        .with_context(|| format!("cannot listen on {host}:{port} ({flags})"))?;
    deepen(&listener)?;
    Ok(listener)
}

/// Listens again with [`BACKLOG`], which Linux allows on a listening socket.
fn deepen(listener: &TcpListener) -> Result<()> {
    rustix::net::listen(listener, BACKLOG).context("cannot set the listen backlog")
}

/// Opens the DNS port: a TCP listener and a UDP socket on one port number.
/// With port 0 the TCP listener picks the port and the UDP socket takes the
/// same, trying again with another if that one is taken for UDP.
pub fn bind_dns(host: &str, port: u16, flags: &str) -> Result<DnsSockets> {
    let addrs = resolve(host, port, flags)?;
    let tries = if port == 0 { 16 } else { 1 };
    let mut last_error = None;
    for _ in 0..tries {
        let tcp = TcpListener::bind(addrs.as_slice())
            .with_context(|| format!("cannot listen on {host}:{port} ({flags}, TCP)"))?;
        deepen(&tcp)?;
        let at = tcp
            .local_addr()
            .context("cannot read the DNS port's address")?;
        match UdpSocket::bind(at) {
            Ok(udp) => return Ok(DnsSockets { udp, tcp }),
            Err(err) => last_error = Some(err),
        }
    }
    let err = last_error.map_or_else(|| anyhow::anyhow!("no address"), anyhow::Error::from);
    Err(err.context(format!("cannot listen on {host}:{port} ({flags}, UDP)")))
}

/// `--metrics ADDR:PORT`, which `tlds1`, `tlds2` and `as_server` share.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (port 0: any free
    /// port; the readiness line names it). Off unless given
    #[arg(long = "metrics", value_name = "ADDR:PORT", value_parser = host_port)]
    pub metrics: Option<(String, u16)>,
}

impl MetricsArgs {
    /// The metrics listener, if `--metrics` was given.
    pub fn bind(&self) -> Result<Option<TcpListener>> {
        self.metrics
            .as_ref()
            .map(|(host, port)| bind(host, *port, "--metrics"))
            .transpose()
    }
}

/// What the readiness line says of a metrics listener: `, metrics on ADDR`.
pub fn metrics_line(listener: Option<&TcpListener>) -> String {
    listener.map_or_else(String::new, |listener| {
        format!(", metrics on {}", local(listener))
    })
}

/// Parses `HOST:PORT` (an IPv6 address in brackets, `[::1]:9100`).
pub fn host_port(text: &str) -> Result<(String, u16)> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("must be ADDR:PORT, such as 127.0.0.1:9100"))?;
    let port = port
        .parse()
        .map_err(|_| anyhow::anyhow!("{port:?} is not a port number (0 to 65535)"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("must be ADDR:PORT, such as 127.0.0.1:9100");
    }
    Ok((host.to_owned(), port))
}

/// The address a listener really got (port 0 resolved), for the start-up line.
pub fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|err| format!("<unknown: {err}>"), |addr| addr.to_string())
}

/// The shortest and longest timeouts accepted, in seconds: a shorter one
/// would round to no timeout at all, a longer one is a mistake.
const SECONDS: (f64, f64) = (0.001, 1_000_000.0);

/// Parses a number of seconds (fractions allowed) for a timeout flag.
pub fn seconds(text: &str) -> Result<Duration> {
    let (least, most) = SECONDS;
    match text.trim().parse::<f64>() {
        Ok(secs) if (least..=most).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => bail!("must be a number of seconds from {least} to {most}"),
    }
}

/// Parses an address (a range of one) or a range such as `10.0.0.0/8`.
pub fn ip_range(text: &str) -> Result<IpNet> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    text.parse::<IpNet>()
        .map_err(|_| anyhow::anyhow!("must be an IP address or a range such as 10.0.0.0/8"))
}

/// Calls `on_signal` with the signal's number, on a thread of its own, the
/// first time SIGINT or SIGTERM arrives.
pub fn on_stop_signal(on_signal: impl FnOnce(i32) + Send + 'static) -> Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).context("cannot listen for SIGINT and SIGTERM")?;
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                on_signal(signal);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Calls `on_hangup` on a thread of its own each time SIGHUP arrives.
pub fn on_hangup(mut on_hangup: impl FnMut() + Send + 'static) -> Result<()> {
    let mut signals = Signals::new([SIGHUP]).context("cannot listen for SIGHUP")?;
    std::thread::Builder::new()
        .name("reload".to_owned())
        .spawn(move || {
            for _ in signals.forever() {
                on_hangup();
            }
        })
        .context("cannot start the reload thread")?;
    Ok(())
}

/// `SIGTERM` for 15, and so on.
pub fn signal_name(signal: i32) -> &'static str {
    signal_hook::low_level::signal_name(signal).unwrap_or("a signal")
}

/// Logs to stderr, each line `time LEVEL program: message`, at the level
/// `-v`/`-q` ask for (info by default); `RUST_LOG`, when set, has the last
/// word (e.g. `RUST_LOG=debug`, or `RUST_LOG=authdns::server=trace`).
pub fn start_logging(program: &'static str, verbosity: &Verbosity<InfoLevel>) {
    let mut logger = env_logger::Builder::new();
    logger
        .filter_level(verbosity.log_level_filter())
        .format(move |out, record| {
            writeln!(
                out,
                "{} {} {program}: {}",
                out.timestamp_millis(),
                record.level(),
                record.args()
            )
        })
        .target(env_logger::Target::Stderr);
    if let Ok(filters) = std::env::var("RUST_LOG") {
        logger.parse_filters(&filters);
    }
    // Only fails if a logger is already set, which would be a bug here.
    let _ = logger.try_init();
}

/// Reports a failure as one logged line, `reason: cause`, exit 1.
pub fn report(program: &str, result: Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|err| {
        if log::log_enabled!(log::Level::Error) {
            log::error!("{err:#}");
        } else {
            // Logging is not set up yet, or silenced: a failure still says why.
            eprintln!("{program}: error: {err:#}");
        }
        ExitCode::FAILURE
    })
}

/// The signal that stopped a server, once one has.
pub struct StopSignal(Arc<AtomicI32>);

impl StopSignal {
    /// A [`Stopper`] that SIGINT and SIGTERM trigger, and what will say
    /// which one did.
    pub fn install() -> Result<(Stopper, StopSignal)> {
        let stopper = Stopper::new();
        let received = Arc::new(AtomicI32::new(0));
        {
            let (stopper, received) = (stopper.clone(), Arc::clone(&received));
            on_stop_signal(move |signal| {
                received.store(signal, Ordering::Release);
                stopper.stop();
            })?;
        }
        Ok((stopper, StopSignal(received)))
    }

    /// `SIGTERM` and the like.
    pub fn name(&self) -> &'static str {
        signal_name(self.0.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    // More connections than std's backlog of 128 can wait for `accept` at
    // once: with std's, the kernel drops the SYNs past it, and those
    // connects hang until their retry.
    #[test]
    fn a_listener_lets_hundreds_wait_for_accept() {
        let listener = bind("127.0.0.1", 0, "--port").unwrap();
        let addr = listener.local_addr().unwrap();
        let waiting: Vec<TcpStream> = (0..400)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                    .unwrap_or_else(|err| panic!("connection {i} waited: {err}"))
            })
            .collect();
        assert_eq!(waiting.len(), 400);
        drop(listener);
    }
}

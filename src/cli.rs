//! What the four command lines share: binding listeners and resolving peers
//! with errors that name the flag at fault, and turning a failure into one
//! line on stderr and an exit status.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

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

/// Opens a listener; port 0 picks any free port.
pub fn bind(host: &str, port: u16, flags: &str) -> Result<TcpListener> {
    let addrs = resolve(host, port, flags)?;
    TcpListener::bind(addrs.as_slice())
        .with_context(|| format!("cannot listen on {host}:{port} ({flags})"))
}

/// The address a listener really got (port 0 resolved), for the start-up line.
pub fn local(listener: &TcpListener) -> String {
    listener
        .local_addr()
        .map_or_else(|err| format!("<unknown: {err}>"), |addr| addr.to_string())
}

/// Parses a number of seconds (fractions allowed) for a timeout flag.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 1e9) {
        return Err(format!("'{text}' must be more than 0 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Prints a failure as one line, `program: error: reason: cause`, exit 1.
pub fn report(program: &str, result: Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|err| {
        eprintln!("{program}: error: {err:#}");
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accepts_fractions_and_rejects_nonsense() {
        assert_eq!(seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
        assert!(seconds("NaN").is_err());
    }

    #[test]
    fn bind_error_names_the_flag_and_address() {
        let taken = bind("127.0.0.1", 0, "--port").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind("127.0.0.1", port, "--port").unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.contains("--port"), "{text}");
    }
}

//! The top-level domain server role, shared by `tlds1` and `tlds2`, which
//! differ only in their [`Defaults`].
//!
//! A TLDS listens on two ports: on its AS port it signs challenges with its
//! key; on its client port it answers hostname lookups from its table. The two
//! are separate so that the signing port can be limited to the AS with
//! `--as-allow`: anyone who can reach it can obtain a digest for any challenge.

use std::net::{IpAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::cli;
use crate::digest::{Key, Signer, sign_many};
use crate::server::{self, Allow, Gate, Respond};
use crate::table::Table;
use crate::wire::{self, ChallengeRequest, DigestReply, HostReply, HostRequest, WireError};

/// What distinguishes `tlds1` from `tlds2`.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub name: &'static str,
    pub as_port: &'static str,
    pub client_port: &'static str,
    pub table: &'static str,
    pub key_file: &'static str,
}

pub const TLDS1: Defaults = Defaults {
    name: "tlds1",
    as_port: "5311",
    client_port: "5312",
    table: "data/tlds1.tsv",
    key_file: "data/key1.txt",
};

pub const TLDS2: Defaults = Defaults {
    name: "tlds2",
    as_port: "5321",
    client_port: "5322",
    table: "data/tlds2.tsv",
    key_file: "data/key2.txt",
};

/// A top-level domain server: signs challenges for the authentication server
/// and answers hostname lookups for clients.
#[derive(Debug, Parser)]
#[command(version)]
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

    /// Serve the AS port only to this peer address (repeatable; default: anyone).
    /// Recommended whenever the AS port is reachable from other machines
    #[arg(long, value_name = "IP")]
    pub as_allow: Vec<IpAddr>,

    /// Most connections served at once, over both ports; more hear `Error: server busy`
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_connections: usize,

    /// Close a connection that sends nothing for this many seconds
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = cli::seconds)]
    pub idle_timeout: Duration,
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
                 and the key are read once, at start; a bad line stops the server with \
                 `path:line: reason`.",
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
    }
}

/// The loaded state a TLDS serves from.
pub struct Tlds {
    table: Table,
    signer: Signer,
}

impl Tlds {
    pub fn new(table: Table, key: &Key) -> Tlds {
        Tlds {
            table,
            signer: key.signer(),
        }
    }

    pub fn records(&self) -> usize {
        self.table.len()
    }

    /// AS port: the replies to one connection's challenges.
    pub fn challenge_replies(&self) -> ChallengeReplies<'_> {
        ChallengeReplies {
            signer: &self.signer,
            challenges: Vec::new(),
            queued: Vec::new(),
        }
    }

    /// Client port: one hostname in, its record (or not found) out.
    pub fn answer_hostname(&self, line: &[u8], out: &mut Vec<u8>) {
        match HostRequest::parse(line) {
            Ok(HostRequest(hostname)) => match self.table.lookup(hostname) {
                Some(record) => HostReply::Found(record).write_to(out),
                None => HostReply::NotFound(hostname).write_to(out),
            },
            Err(err) => wire::write_error(out, &err),
        }
    }
}

/// The AS port's [`Respond`]: one challenge in, its digest (or an error)
/// out. Challenges are queued as they arrive and a whole burst is signed when
/// its replies are about to be written, so that [`sign_many`] can sign eight
/// side by side.
pub struct ChallengeReplies<'t> {
    signer: &'t Signer,
    /// The queued challenges' bytes, end to end.
    challenges: Vec<u8>,
    /// Each queued request in order: where its challenge ends in
    /// `challenges`, or why it was refused.
    queued: Vec<Result<usize, WireError>>,
}

impl Respond for ChallengeReplies<'_> {
    fn respond(&mut self, line: &[u8], _out: &mut Vec<u8>) {
        let queued = ChallengeRequest::parse(line).map(|ChallengeRequest(challenge)| {
            self.challenges.extend_from_slice(challenge.as_bytes());
            self.challenges.len()
        });
        self.queued.push(queued);
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        let mut start = 0;
        let work: Vec<(&Signer, &[u8])> = self
            .queued
            .iter()
            .filter_map(|queued| queued.as_ref().ok())
            .map(|&end| {
                let challenge = self.challenges.get(start..end).unwrap_or_default();
                start = end;
                (self.signer, challenge)
            })
            .collect();
        let mut digests = Vec::with_capacity(work.len());
        sign_many(&work, |digest| digests.push(digest));
        let mut digests = digests.into_iter();
        for queued in self.queued.drain(..) {
            match queued.map(|_| digests.next()) {
                Ok(Some(digest)) => DigestReply::Digest(digest).write_to(out),
                Ok(None) => {}
                Err(err) => wire::write_error(out, &err),
            }
        }
        self.challenges.clear();
    }

    fn queued(&self) -> usize {
        self.queued.len()
    }
}

/// A TLDS's two listeners, already bound.
pub struct Listeners {
    pub as_port: TcpListener,
    pub client_port: TcpListener,
}

/// Serves both ports until the process ends.
pub fn run(
    name: &'static str,
    tlds: Arc<Tlds>,
    listeners: Listeners,
    gate: Arc<Gate>,
    allow: Allow,
) -> Result<()> {
    let signing = Arc::clone(&tlds);
    let as_gate = Arc::clone(&gate);
    let as_role = format!("{name} AS port");
    thread::Builder::new()
        .name(as_role.clone())
        .spawn(move || {
            server::serve(&as_role, listeners.as_port, as_gate, allow, move |stream| {
                server::serve_lines(stream, signing.challenge_replies())
            })
        })
        .context("cannot start the AS-port thread")?;
    let client_role = format!("{name} client port");
    server::serve(
        &client_role,
        listeners.client_port,
        gate,
        Allow::Anyone,
        move |stream| {
            let answer = |line: &[u8], out: &mut Vec<u8>| tlds.answer_hostname(line, out);
            server::serve_lines(stream, answer)
        },
    );
    Ok(())
}

fn start(defaults: &Defaults) -> Result<ExitCode> {
    let matches = Args::command_for(defaults).get_matches();
    let args = Args::from_arg_matches(&matches)?;
    let key = Key::load(&args.key_file)?;
    let table = Table::load(&args.table)?;
    let listeners = Listeners {
        as_port: cli::bind(&args.bind, args.as_port, "--bind/--as-port")?,
        client_port: cli::bind(&args.bind, args.client_port, "--bind/--client-port")?,
    };
    let tlds = Arc::new(Tlds::new(table, &key));
    let allow = if args.as_allow.is_empty() {
        Allow::Anyone
    } else {
        Allow::Only(args.as_allow.clone().into())
    };
    eprintln!(
        "{}: serving {} records; AS port on {}, client port on {}",
        defaults.name,
        tlds.records(),
        cli::local(&listeners.as_port),
        cli::local(&listeners.client_port),
    );
    let gate = Gate::new(args.max_connections, args.idle_timeout);
    run(defaults.name, tlds, listeners, gate, allow)?;
    Ok(ExitCode::SUCCESS)
}

/// The whole `tlds1`/`tlds2` program.
pub fn main(defaults: &Defaults) -> ExitCode {
    cli::report(defaults.name, start(defaults))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlds() -> Tlds {
        let table = Table::parse(b"Amazon.org\t94.5.6.7\tA\n").unwrap();
        Tlds::new(table, &Key::new("k5678"))
    }

    fn reply(answer: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        answer(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// The replies to `lines` sent in one burst.
    fn replies_to(tlds: &Tlds, lines: &[&[u8]]) -> Vec<String> {
        let mut replies = tlds.challenge_replies();
        let text = reply(|out| {
            for line in lines {
                replies.respond(line, out);
            }
            replies.complete(out);
        });
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn signs_challenges() {
        let tlds = tlds();
        assert_eq!(
            replies_to(&tlds, &[b"foxtrot"]),
            ["83cdae16a693560b34bac1f64b7cf10a"]
        );
        assert!(replies_to(&tlds, &[b""])[0].starts_with("Error: "));
    }

    // A burst long enough to be signed side by side, with refusals mixed in,
    // gets every reply in order.
    #[test]
    fn signs_a_burst_in_order() {
        let tlds = tlds();
        let lines: Vec<Vec<u8>> = (0..40)
            .map(|i| match i % 7 {
                3 => b"two fields".to_vec(),
                5 => vec![b'x'; 300],
                _ => format!("challenge{i}").into_bytes(),
            })
            .collect();
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let one_at_a_time: Vec<String> = lines
            .iter()
            .flat_map(|line| replies_to(&tlds, &[line]))
            .collect();
        assert_eq!(replies_to(&tlds, &lines), one_at_a_time);
        assert_eq!(
            one_at_a_time[0],
            crate::digest::hmac_md5(b"k5678", b"challenge0").to_string()
        );
        assert!(one_at_a_time[3].starts_with("Error: "));
        assert!(one_at_a_time[5].starts_with("Error: "));
    }

    #[test]
    fn answers_hostnames() {
        let tlds = tlds();
        assert_eq!(
            reply(|out| tlds.answer_hostname(b"AMAZON.org", out)),
            "Amazon.org 94.5.6.7 A\n"
        );
        assert_eq!(
            reply(|out| tlds.answer_hostname(b"nothinghere.com", out)),
            "nothinghere.com - Error:HOST NOT FOUND\n"
        );
        assert!(reply(|out| tlds.answer_hostname(b"a b", out)).starts_with("Error: "));
    }

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
        assert_eq!(args.as_allow, ["127.0.0.1".parse::<IpAddr>().unwrap()]);
    }
}

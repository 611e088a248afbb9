//! The top-level domain server role, shared by `tlds1` and `tlds2`, which
//! differ only in their [`Defaults`].
//!
//! A TLDS listens on two ports: on its AS port it signs challenges with its
//! key; on its client port it answers hostname lookups from its table. The two
//! are separate so that the signing port can be limited to the AS with
//! `--as-allow`: anyone who can reach it can obtain a digest for any challenge.
//!
//! With `--dns-port`, a third port answers the table as DNS over UDP and
//! TCP (the [`crate::dns`] face), authenticated with TSIG under the same key.
//!
//! The table and the key are [`Records`], replaced whole on reload: each
//! burst of requests is answered from one of them, so a query sees the old
//! table or the new one, never a mix.

use std::io;
use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::Duration;

use ipnet::IpNet;

use crate::connection::{PeerAddr, Respond};
use crate::digest::{Signer, sign_many};
use crate::dns::{self, DnsMetrics, Handler};
use crate::key::Key;
use crate::metrics::{PortMetrics, ServerMetrics, Tally, http};
use crate::packed::Packed;
use crate::server::{self, Allow, Gate, Port, Stopper};
use crate::sync::unpoisoned;
use crate::table::Table;
use crate::wire::{
    self, ChallengeRequest, DigestReply, HostReply, HostRequest, ProofGreeting, ProofRequest,
    WireError,
};

/// What distinguishes `tlds1` from `tlds2`.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    pub name: &'static str,
    pub as_port: &'static str,
    pub client_port: &'static str,
    pub table: &'static str,
    pub key_file: &'static str,
    /// The TSIG key name of the DNS port.
    pub dns_key_name: &'static str,
}

pub const TLDS1: Defaults = Defaults {
    name: "tlds1",
    as_port: "5311",
    client_port: "5312",
    table: "data/tlds1.tsv",
    key_file: "data/key1.txt",
    dns_key_name: "tlds1.",
};

pub const TLDS2: Defaults = Defaults {
    name: "tlds2",
    as_port: "5321",
    client_port: "5322",
    table: "data/tlds2.tsv",
    key_file: "data/key2.txt",
    dns_key_name: "tlds2.",
};

/// Everything a TLDS serves with, loaded and checked by its caller.
#[derive(Debug)]
pub struct Config {
    /// `tlds1` or `tlds2`, in log lines.
    pub name: &'static str,
    /// The table and key, which the caller may replace while serving.
    pub records: Arc<Records>,
    /// Answer only clients that first prove they hold the key.
    pub require_proof: bool,
    /// Peers allowed on the AS port; empty means anyone.
    pub as_allow: Vec<IpNet>,
    /// Connections served at once on the client port.
    pub max_connections: usize,
    /// Connections served at once on the AS port: a budget of its own, so
    /// clients can never take the slots the AS needs.
    pub max_as_connections: usize,
    pub idle_timeout: Duration,
    /// How the DNS port answers, when there is one.
    pub dns: Option<DnsConfig>,
    /// What the ports count; served when [`Listeners::metrics`] is given.
    pub metrics: ServerMetrics,
}

/// The client port's request outcomes, as the metrics label them.
pub const CLIENT_OUTCOMES: [&str; 4] = ["found", "not_found", "malformed", "refused"];
const FOUND: usize = 0;
const NOT_FOUND: usize = 1;
const MALFORMED: usize = 2;
/// No answer for want of a proof of key.
const REFUSED: usize = 3;

/// The AS port's request outcomes.
pub const AS_OUTCOMES: [&str; 2] = ["signed", "malformed"];
const SIGNED: usize = 0;

/// The DNS port's part of a [`Config`].
#[derive(Debug)]
pub struct DnsConfig {
    pub settings: dns::Settings,
    /// TCP connections served at once: a budget of its own, like the others.
    pub max_connections: usize,
    /// Threads receiving on the UDP socket: the UDP queries answered at once.
    pub udp_threads: usize,
}

/// The loaded state a TLDS serves from. Its key stays secret: `Signer`
/// prints nothing of it.
#[derive(Debug)]
pub struct Tlds {
    table: Table,
    signer: Signer,
    /// The DNS zone's SOA serial: new with every table served.
    serial: u32,
}

impl Tlds {
    pub fn new(table: Table, key: &Key, serial: u32) -> Tlds {
        Tlds {
            table,
            signer: key.signer(),
            serial,
        }
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// HMAC-MD5 under the key: the AS port's digests, the proofs and TSIG.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The SOA serial of the DNS face for this table.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Client port: one hostname in, its record (or not found) out; the
    /// outcome, as the metrics count it.
    pub fn answer_hostname(&self, line: &[u8], out: &mut Vec<u8>) -> usize {
        match HostRequest::parse(line) {
            Ok(HostRequest(hostname)) => match self.table.lookup(hostname) {
                Some(record) => {
                    HostReply::Found(record).write_to(out);
                    FOUND
                }
                None => {
                    HostReply::NotFound(hostname).write_to(out);
                    NOT_FOUND
                }
            },
            Err(err) => {
                wire::write_error(out, &err);
                MALFORMED
            }
        }
    }
}

/// What a TLDS serves from: one [`Tlds`] at a time, replaced whole.
#[derive(Debug)]
pub struct Records {
    current: RwLock<Arc<Tlds>>,
}

impl Records {
    pub fn new(table: Table, key: &Key) -> Arc<Records> {
        Arc::new(Records {
            current: RwLock::new(Arc::new(Tlds::new(table, key, unix_seconds()))),
        })
    }

    /// What to answer the next burst from.
    pub fn current(&self) -> Arc<Tlds> {
        let current = unpoisoned(self.current.read());
        Arc::clone(&current)
    }

    /// Serves `table` and `key` from the next burst on; the state for them
    /// is built before the swap, so no burst waits for it.
    /// The SOA serial moves on with every replacement: to the clock's
    /// seconds, or one past the last serial when reloads come faster.
    pub fn replace(&self, table: Table, key: &Key) {
        let serial = unix_seconds().max(self.current().serial.wrapping_add(1));
        let replacement = Arc::new(Tlds::new(table, key, serial));
        *unpoisoned(self.current.write()) = replacement;
    }

    /// AS port: the replies to one connection's challenges.
    pub fn challenge_replies<'r>(
        &'r self,
        peer: PeerAddr,
        metrics: &'r PortMetrics,
    ) -> ChallengeReplies<'r> {
        ChallengeReplies {
            records: self,
            peer,
            queued: Packed::default(),
            metrics,
            tally: Tally::default(),
        }
    }

    /// Client port: the replies to one connection's hostnames; with
    /// `require_proof`, only once the client has proved it holds the key.
    pub fn host_answers<'r>(
        &'r self,
        peer: PeerAddr,
        require_proof: bool,
        metrics: &'r PortMetrics,
    ) -> HostAnswers<'r> {
        let proof = if require_proof {
            Proof::Awaiting(fresh_nonce())
        } else {
            Proof::Open
        };
        HostAnswers {
            records: self,
            peer,
            snapshot: None,
            proof,
            metrics,
            tally: Tally::default(),
        }
    }
}

/// Seconds since 1970 as a 32-bit SOA serial (RFC 1982 arithmetic wraps it).
fn unix_seconds() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as u32)
}

/// Where a client-port connection stands on proving it holds the key.
enum Proof {
    /// No proof is required, or it was given.
    Open,
    /// The greeting's nonce, which the proof must sign.
    Awaiting(String),
    /// The proof was wrong: the connection ends.
    Failed,
}

/// 128 bits from the operating system's random source, as 32 lowercase hex
/// digits: a nonce no other connection will have had.
fn fresh_nonce() -> String {
    let mut bytes = [0u8; 16];
    // The operating system's random source failing is a broken system; a
    // nonce from any other source could repeat, so do not go on without it.
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    hex::encode(bytes)
}

/// The client port's [`Respond`]: one hostname in, its record (or not
/// found) out, every request of a burst from the same [`Tlds`].
pub struct HostAnswers<'r> {
    records: &'r Records,
    peer: PeerAddr,
    snapshot: Option<Arc<Tlds>>,
    proof: Proof,
    metrics: &'r PortMetrics,
    /// This burst's outcomes, added to `metrics` when it is complete.
    tally: Tally,
}

impl HostAnswers<'_> {
    /// A line before the proof: the proof itself, or `Error: proof required`.
    fn check_proof(&mut self, nonce: &str, line: &[u8], out: &mut Vec<u8>) {
        let Ok(ProofRequest(proof)) = ProofRequest::parse(line) else {
            wire::write_error(out, &"proof required");
            self.tally.note(REFUSED);
            return;
        };
        let expected = self
            .records
            .current()
            .signer
            .sign(&wire::proof_message(nonce));
        // Constant time, through the digest crate's comparison.
        if proof.matches(&expected) {
            self.proof = Proof::Open;
        } else {
            log::warn!("client port: {}: proof failed", self.peer);
            wire::write_error(out, &"proof failed");
            self.tally.note(REFUSED);
            self.proof = Proof::Failed;
        }
    }
}

impl Respond for HostAnswers<'_> {
    fn greet(&mut self, out: &mut Vec<u8>) {
        if let Proof::Awaiting(nonce) = &self.proof {
            ProofGreeting(nonce).write_to(out);
        }
    }

    fn refuses_more(&self) -> bool {
        matches!(self.proof, Proof::Failed)
    }

    fn respond(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if let Proof::Awaiting(nonce) = &self.proof {
            let nonce = nonce.clone();
            return self.check_proof(&nonce, line, out);
        }
        let from = out.len();
        let outcome = self
            .snapshot
            .get_or_insert_with(|| self.records.current())
            .answer_hostname(line, out);
        self.tally.note(outcome);
        if log::log_enabled!(log::Level::Trace) {
            let reply = out.get(from..).unwrap_or_default();
            log::trace!(
                "client port: {} asked {}: {}",
                self.peer,
                String::from_utf8_lossy(line),
                String::from_utf8_lossy(reply).trim_end()
            );
        }
    }

    fn complete(&mut self, _out: &mut Vec<u8>) {
        // The next burst sees a reloaded table, if there is one.
        self.snapshot = None;
        self.tally.record_into(self.metrics);
    }
}

/// The AS port's [`Respond`]: one challenge in, its digest (or an error)
/// out. Challenges are queued as they arrive and a whole burst is signed when
/// its replies are about to be written, so that [`sign_many`] can sign
/// sixteen side by side.
pub struct ChallengeReplies<'r> {
    records: &'r Records,
    peer: PeerAddr,
    /// Each queued request in order: its challenge, or (with no text) why
    /// it was refused.
    queued: Packed<Result<(), WireError>>,
    metrics: &'r PortMetrics,
    tally: Tally,
}

impl Respond for ChallengeReplies<'_> {
    fn respond(&mut self, line: &[u8], _out: &mut Vec<u8>) {
        match ChallengeRequest::parse(line) {
            Ok(ChallengeRequest(challenge)) => {
                self.queued.push(challenge, Ok(()));
                self.tally.note(SIGNED);
            }
            Err(err) => {
                self.queued.push("", Err(err));
                self.tally.note(MALFORMED);
            }
        }
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.queued.is_empty() {
            return;
        }
        let tlds = self.records.current();
        let signer = &tlds.signer;
        let work: Vec<(&Signer, &[u8])> = self
            .queued
            .iter()
            .filter(|(_, refused)| refused.is_ok())
            .map(|(challenge, _)| (signer, challenge.as_bytes()))
            .collect();
        if log::log_enabled!(log::Level::Trace) {
            for (_, challenge) in &work {
                log::trace!(
                    "AS port: {} challenge {}: signed",
                    self.peer,
                    String::from_utf8_lossy(challenge)
                );
            }
        }
        let mut digests = Vec::with_capacity(work.len());
        sign_many(&work, |digest| digests.push(digest));
        let mut digests = digests.into_iter();
        for (_, queued) in self.queued.iter() {
            match queued {
                Ok(()) => {
                    let digest = digests
                        .next()
                        .expect("sign_many gives one digest per queued challenge");
                    DigestReply::Digest(digest).write_to(out)
                }
                Err(err) => wire::write_error(out, err),
            }
        }
        self.queued.clear();
        self.tally.record_into(self.metrics);
    }

    fn queued(&self) -> usize {
        self.queued.len()
    }
}

/// A TLDS's listeners, already bound.
pub struct Listeners {
    pub as_port: TcpListener,
    pub client_port: TcpListener,
    /// The DNS port's two sockets, on one port number.
    pub dns: Option<DnsSockets>,
    /// Where `/metrics` is served, if anywhere.
    pub metrics: Option<TcpListener>,
}

pub struct DnsSockets {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

/// Serves every port until `stopper` says stop, then lets open connections
/// finish what they have read (for at most [`server::GRACE`]).
pub fn run(config: Config, listeners: Listeners, stopper: &Stopper) -> io::Result<()> {
    let records = config.records;
    let require_proof = config.require_proof;
    let mut metrics = config.metrics;
    let as_gate = Gate::new(config.max_as_connections, config.idle_timeout);
    let client_gate = Gate::new(config.max_connections, config.idle_timeout);
    let dns = config.dns.zip(listeners.dns).map(|(dns, sockets)| {
        let gate = Gate::new(dns.max_connections, config.idle_timeout);
        let dns_metrics = DnsMetrics::register(&mut metrics);
        let port = dns_metrics.port().clone();
        let handler = Handler::new(Arc::clone(&records), dns.settings, dns_metrics);
        (handler, gate, dns.udp_threads, sockets, port)
    });
    let as_port = Port {
        role: "AS port".into(),
        allow: Allow::only(&config.as_allow),
        says_why: true,
        metrics: metrics.port("as", &AS_OUTCOMES),
    };
    let client_port = Port {
        role: "client port".into(),
        allow: Allow::Anyone,
        says_why: true,
        metrics: metrics.port("client", &CLIENT_OUTCOMES),
    };
    let metrics = Arc::new(metrics);
    let metrics_gate = Gate::new(http::MAX_CONNECTIONS, http::IDLE_TIMEOUT);
    thread::scope(|scope| {
        let signing = Arc::clone(&records);
        let as_listener = listeners.as_port;
        let (as_port, as_gate) = (&as_port, &as_gate);
        thread::Builder::new()
            .name(format!("{} AS port", config.name))
            .spawn_scoped(scope, move || {
                let port_metrics = as_port.metrics.clone();
                server::serve(as_port, as_listener, as_gate, stopper, move |connection| {
                    let peer = connection.peer();
                    connection.serve(signing.challenge_replies(peer, &port_metrics))
                })
            })?;
        if let Some((handler, gate, udp_threads, sockets, port_metrics)) = &dns {
            let name = config.name;
            thread::Builder::new()
                .name(format!("{name} DNS UDP"))
                .spawn_scoped(scope, move || {
                    if let Err(err) =
                        dns::udp::serve(&sockets.udp, *udp_threads, handler, stopper, name)
                    {
                        log::error!("DNS port: cannot serve UDP: {err}");
                    }
                })?;
            let tcp = sockets.tcp.try_clone()?;
            let dns_port = Port {
                role: "DNS port".into(),
                allow: Allow::Anyone,
                says_why: false,
                metrics: port_metrics.clone(),
            };
            let (handler, idle_timeout) = (handler.clone(), config.idle_timeout);
            thread::Builder::new()
                .name(format!("{name} DNS TCP"))
                .spawn_scoped(scope, move || {
                    server::serve(&dns_port, tcp, gate, stopper, move |connection| {
                        dns::tcp::serve(connection, &handler, idle_timeout)
                    })
                })?;
        }
        if let Some(listener) = listeners.metrics {
            let metrics = Arc::clone(&metrics);
            let metrics_gate = &metrics_gate;
            thread::Builder::new()
                .name(format!("{} metrics", config.name))
                .spawn_scoped(scope, move || {
                    server::serve_metrics(listener, metrics, metrics_gate, stopper)
                })?;
        }
        let port_metrics = client_port.metrics.clone();
        server::serve(
            &client_port,
            listeners.client_port,
            &client_gate,
            stopper,
            move |connection| {
                let peer = connection.peer();
                connection.serve(records.host_answers(peer, require_proof, &port_metrics))
            },
        );
        Ok::<(), io::Error>(())
    })?;
    let mut gates = vec![&*as_gate, &*client_gate, &*metrics_gate];
    gates.extend(dns.as_ref().map(|(_, gate, ..)| &**gate));
    server::wait_out_grace(&gates);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlds() -> Arc<Records> {
        let table = Table::parse(b"Amazon.org\t94.5.6.7\tA\n").unwrap();
        Records::new(table, &Key::new("k5678"))
    }

    fn reply<R>(answer: impl FnOnce(&mut Vec<u8>) -> R) -> String {
        let mut out = Vec::new();
        answer(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// The replies to `lines` sent in one burst.
    fn replies_to(tlds: &Records, lines: &[&[u8]]) -> Vec<String> {
        let metrics = PortMetrics::unserved(&AS_OUTCOMES);
        let mut replies = tlds.challenge_replies(PeerAddr::default(), &metrics);
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
            reply(|out| tlds.current().answer_hostname(b"AMAZON.org", out)),
            "Amazon.org 94.5.6.7 A\n"
        );
        assert_eq!(
            reply(|out| tlds.current().answer_hostname(b"nothinghere.com", out)),
            "nothinghere.com - Error:HOST NOT FOUND\n"
        );
        assert!(reply(|out| tlds.current().answer_hostname(b"a b", out)).starts_with("Error: "));
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;

    // A burst is answered from one table: a replacement made in the middle
    // of a burst is seen from the next burst on.
    #[test]
    fn a_burst_sees_one_table_and_the_next_sees_the_new_one() {
        let records = Records::new(
            Table::parse(b"a.example 10.0.0.1 A\n").unwrap(),
            &Key::new("k"),
        );
        let metrics = PortMetrics::unserved(&CLIENT_OUTCOMES);
        let mut answers = records.host_answers(PeerAddr::default(), false, &metrics);
        let mut out = Vec::new();
        answers.respond(b"a.example", &mut out);
        records.replace(
            Table::parse(b"a.example 10.0.0.2 A\n").unwrap(),
            &Key::new("k"),
        );
        answers.respond(b"a.example", &mut out);
        answers.complete(&mut out);
        answers.respond(b"a.example", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a.example 10.0.0.1 A\na.example 10.0.0.1 A\na.example 10.0.0.2 A\n"
        );
    }
}

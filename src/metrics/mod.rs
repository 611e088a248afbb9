//! Prometheus metrics (`--metrics`): what each server counts, and the
//! registry a scrape encodes in the Prometheus text format (`http.rs`
//! serves it).
//!
//! Every counter is created when the server starts, with its labels fixed
//! then (a port, an outcome, a TLDS's name: never a hostname, challenge or
//! key), and handed to the code that counts. Serving threads add to them
//! once per burst (a connection's burst, a TLDS's answers, a DNS message),
//! through atomics: nothing on a request's path takes a lock. A server
//! counts whether or not `--metrics` is given; the flag only serves them.

pub mod http;
mod latency;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use latency::Latency;

/// The most outcomes one port's requests are counted by.
pub const MAX_OUTCOMES: usize = 10;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabel {
    port: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortOutcome {
    port: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TldsLabel {
    tlds: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// One server's metrics, from which each part of it takes its own.
#[derive(Debug)]
pub struct ServerMetrics {
    registry: Registry,
    requests: Family<PortOutcome, Counter>,
    durations: Family<PortLabel, Latency>,
    connections: Family<PortOutcome, Counter>,
    open: Family<PortLabel, Gauge>,
    /// The AS's TLDS families, registered with the first TLDS.
    tlds: Option<TldsFamilies>,
}

#[derive(Debug, Default)]
struct TldsFamilies {
    up: Family<TldsLabel, Gauge>,
    downs: Family<TldsLabel, Counter>,
    reconnects: Family<TldsLabel, Counter>,
    bursts: Family<TldsLabel, Counter>,
    writes: Family<TldsLabel, Counter>,
    answers: Family<TldsLabel, Latency>,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics::new()
    }
}

impl ServerMetrics {
    /// The families every server has, and its build and start time.
    pub fn new() -> ServerMetrics {
        let mut registry = Registry::with_prefix("authdns");
        registry.register(
            "build",
            "The running build",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let started: Gauge<f64, AtomicU64> = Gauge::default();
        started.set(unix_now());
        registry.register(
            "process_start_time_seconds",
            "When the process started, in seconds since 1970",
            started,
        );
        let requests = Family::default();
        registry.register(
            "requests",
            "Requests answered, by port and outcome",
            requests.clone(),
        );
        let durations = Family::default();
        registry.register(
            "request_duration_seconds",
            "Time from a burst's first request read to its replies ready, for each request of it",
            durations.clone(),
        );
        let connections = Family::default();
        registry.register(
            "connections",
            "Connections by port and outcome: accepted, refused (--as-allow), busy, \
             evicted (closed to make room), idle_closed",
            connections.clone(),
        );
        let open = Family::default();
        registry.register(
            "connections_open",
            "Connections open now, by port",
            open.clone(),
        );
        ServerMetrics {
            registry,
            requests,
            durations,
            connections,
            open,
            tlds: None,
        }
    }

    /// The metrics of port `port`, whose requests end in one of `outcomes`.
    pub fn port(&self, port: &'static str, outcomes: &[&'static str]) -> PortMetrics {
        let connection = |outcome| {
            self.connections
                .get_or_create_owned(&PortOutcome { port, outcome })
        };
        PortMetrics(Arc::new(PortCounters {
            outcomes: outcomes
                .iter()
                .take(MAX_OUTCOMES)
                .map(|&outcome| {
                    self.requests
                        .get_or_create_owned(&PortOutcome { port, outcome })
                })
                .collect(),
            // A port that answers no counted requests has no time series.
            duration: if outcomes.is_empty() {
                Latency::default()
            } else {
                self.durations.get_or_create_owned(&PortLabel { port })
            },
            open: self.open.get_or_create_owned(&PortLabel { port }),
            accepted: connection("accepted"),
            refused: connection("refused"),
            busy: connection("busy"),
            evicted: connection("evicted"),
            idle_closed: connection("idle_closed"),
        }))
    }

    /// The AS's view of one TLDS, `tlds`.
    pub fn tlds(&mut self, tlds: &'static str) -> TldsMetrics {
        let families = self.tlds.get_or_insert_with(|| {
            let families = TldsFamilies::default();
            let registry = &mut self.registry;
            registry.register(
                "tlds_up",
                "1 while the AS reaches the TLDS; 0 once it has failed, and before the AS first reached it",
                families.up.clone(),
            );
            registry.register(
                "tlds_down",
                "Times the TLDS went down",
                families.downs.clone(),
            );
            registry.register(
                "tlds_link_reconnects",
                "Connections the AS's links to the TLDS opened after their first",
                families.reconnects.clone(),
            );
            registry.register(
                "tlds_link_bursts",
                "Bursts of challenges the AS queued on its links to the TLDS",
                families.bursts.clone(),
            );
            registry.register(
                "tlds_link_writes",
                "Writes on the AS's links to the TLDS, each carrying every burst queued when it began",
                families.writes.clone(),
            );
            registry.register(
                "tlds_answer_duration_seconds",
                "Time from a burst of challenges sent to the TLDS to its answers, per burst",
                families.answers.clone(),
            );
            families
        });
        let label = TldsLabel { tlds };
        TldsMetrics {
            up: families.up.get_or_create_owned(&label),
            downs: families.downs.get_or_create_owned(&label),
            reconnects: families.reconnects.get_or_create_owned(&label),
            bursts: families.bursts.get_or_create_owned(&label),
            writes: families.writes.get_or_create_owned(&label),
            answers: families.answers.get_or_create_owned(&label),
        }
    }

    /// A TLDS's table: its size and its reloads.
    pub fn table(&mut self) -> TableMetrics {
        let metrics = TableMetrics::default();
        self.registry.register(
            "records",
            "Records served from the table",
            metrics.records.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        let ok = reloads.get_or_create_owned(&ResultLabel { result: "ok" });
        let failed = reloads.get_or_create_owned(&ResultLabel { result: "failed" });
        self.registry
            .register("reloads", "Reloads on SIGHUP, by result", reloads);
        self.registry.register(
            "last_reload_success_timestamp_seconds",
            "When the table and key now served were loaded (start or SIGHUP), in seconds since 1970",
            metrics.loaded_at.clone(),
        );
        TableMetrics {
            reloaded: ok,
            failed,
            ..metrics
        }
    }

    /// The DNS port's TSIG outcomes; its rcodes are its requests' outcomes.
    pub fn tsig(&mut self, outcomes: &[&'static str]) -> Vec<Counter> {
        let family = Family::<PortOutcome, Counter>::default();
        let counters = outcomes
            .iter()
            .map(|&outcome| {
                family.get_or_create_owned(&PortOutcome {
                    port: "dns",
                    outcome,
                })
            })
            .collect();
        self.registry.register(
            "dns_tsig",
            "DNS requests by what became of their TSIG record",
            family,
        );
        counters
    }

    /// The exposition of every metric, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// Seconds since 1970, as the timestamps metrics carry.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// One port's counters, shared by its listener and its connections.
#[derive(Debug, Clone)]
pub struct PortMetrics(Arc<PortCounters>);

#[derive(Debug)]
struct PortCounters {
    outcomes: Vec<Counter>,
    duration: Latency,
    open: Gauge,
    accepted: Counter,
    refused: Counter,
    busy: Counter,
    evicted: Counter,
    idle_closed: Counter,
}

/// What happened to a connection, as the connection counters say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEvent {
    Accepted,
    /// Not in `--as-allow`.
    Refused,
    Busy,
    /// Closed to make room for a newcomer.
    Evicted,
    IdleClosed,
}

impl PortMetrics {
    /// Counters that count but are served nowhere: for a port that runs
    /// without a [`ServerMetrics`] (in tests).
    pub fn unserved(outcomes: &[&'static str]) -> PortMetrics {
        ServerMetrics::new().port("unserved", outcomes)
    }

    pub fn connection(&self, event: ConnectionEvent) {
        let counters = &self.0;
        match event {
            ConnectionEvent::Accepted => {
                counters.accepted.inc();
                counters.open.inc();
            }
            ConnectionEvent::Refused => drop(counters.refused.inc()),
            ConnectionEvent::Busy => drop(counters.busy.inc()),
            ConnectionEvent::Evicted => drop(counters.evicted.inc()),
            ConnectionEvent::IdleClosed => drop(counters.idle_closed.inc()),
        }
    }

    /// An admitted connection has ended.
    pub fn closed(&self) {
        self.0.open.dec();
    }

    /// Adds a burst's tally and its time.
    pub fn record(&self, tally: &Tally) {
        let Some(started) = tally.started else {
            return;
        };
        let mut requests = 0;
        for (counter, &count) in self.0.outcomes.iter().zip(&tally.counts) {
            if count > 0 {
                counter.inc_by(count);
                requests += count;
            }
        }
        self.0.duration.observe(started.elapsed(), requests);
    }
}

/// One burst's requests by outcome (an index into the port's outcomes),
/// counted in plain integers and added to the port's counters at once.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    counts: [u64; MAX_OUTCOMES],
    /// When the burst's first request was read.
    started: Option<Instant>,
}

impl Tally {
    /// The burst has begun, if it had not: its time counts from now.
    pub fn begin(&mut self) {
        if self.started.is_none() {
            self.started = Some(Instant::now());
        }
    }

    /// Notes one request ending in outcome `outcome`.
    pub fn note(&mut self, outcome: usize) {
        self.begin();
        if let Some(count) = self.counts.get_mut(outcome) {
            *count += 1;
        }
    }

    /// Adds the burst to `metrics` and starts the next one.
    pub fn record_into(&mut self, metrics: &PortMetrics) {
        metrics.record(self);
        *self = Tally::default();
    }
}

/// The AS's view of one TLDS.
#[derive(Debug, Clone, Default)]
pub struct TldsMetrics {
    pub up: Gauge,
    pub downs: Counter,
    pub reconnects: Counter,
    /// Bursts queued on the links, and the writes that carried them: more
    /// bursts than writes is the links writing many clients' bursts at once.
    pub bursts: Counter,
    pub writes: Counter,
    pub answers: Latency,
}

impl TldsMetrics {
    pub fn answered(&self, took: Duration) {
        self.answers.observe(took, 1);
    }
}

/// A TLDS's table, as its metrics say it.
#[derive(Debug, Clone, Default)]
pub struct TableMetrics {
    records: Gauge,
    reloaded: Counter,
    failed: Counter,
    loaded_at: Gauge<f64, AtomicU64>,
}

impl TableMetrics {
    /// A table of `records` records is served from now on; `reload` says
    /// whether it came by SIGHUP (else it is the one loaded at start).
    pub fn loaded(&self, records: usize, reload: bool) {
        self.records.set(i64::try_from(records).unwrap_or(i64::MAX));
        self.loaded_at.set(unix_now());
        if reload {
            self.reloaded.inc();
        }
    }

    pub fn reload_failed(&self) {
        self.failed.inc();
    }
}

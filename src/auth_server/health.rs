//! What the AS knows of one TLDS's health, shared by all the links to it:
//! up, or down since when and why.
//!
//! Down means "do not wait on it", not "do not try it". A TLDS that
//! refuses or resets connections is the very one about to come back, and a
//! refused connect costs microseconds: every burst that needs it tries it
//! again (one connect at a time per TLDS), and its queries fail at once
//! only while it refuses. A TLDS that timed out or talked nonsense would
//! cost every burst a `--timeout`, so it is *skipped*: bursts for it fail
//! at once while a prober tries it, first after about 100 ms, then about
//! twice as long each time (with jitter), never more than [`LONGEST_WAIT`]
//! apart, so a TLDS that recovers is used again within that. The first
//! answer, from a burst or a probe, brings it back. Each change is logged
//! once, when it happens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::endpoint::{Downed, LinkError, LinkErrorKind, TldsEndpoint};
use crate::connection::{self, Connection, LineClock};
use crate::metrics::TldsMetrics;
use crate::sync::{lock, unpoisoned};
use crate::wire::ChallengeRequest;

/// The first wait before probing a skipped TLDS.
const FIRST_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between probes, jitter included: a TLDS that recovers
/// is used again within this (and its probe's round trip).
pub const LONGEST_WAIT: Duration = Duration::from_secs(1);

/// What the AS knows of a TLDS.
#[derive(Debug, Clone)]
pub enum Health {
    /// Nothing has been tried yet.
    Untried,
    Up {
        since: Instant,
    },
    Down {
        since: Instant,
        why: Arc<LinkError>,
        /// Bursts skip it (it timed out or talked nonsense) until a probe
        /// is answered; otherwise (it refused) every burst tries it.
        skipped: bool,
    },
}

struct State {
    health: Health,
    probing: bool,
    stopped: bool,
}

/// One TLDS's health, shared by its links and its prober.
pub struct TldsHealth {
    endpoint: Arc<TldsEndpoint>,
    described: Arc<str>,
    timeout: Duration,
    state: Mutex<State>,
    /// Whether `state` says down: read on every answered burst, so that an
    /// answer from a healthy TLDS costs no lock.
    down: AtomicBool,
    /// Held while a link connects, so that a TLDS that refuses is tried by
    /// one connect at a time, however many links and bursts want it.
    connecting: Mutex<()>,
    /// Wakes the prober when the AS stops.
    stopping: Condvar,
    /// Its up gauge and down counter follow `state`.
    metrics: TldsMetrics,
}

impl TldsHealth {
    pub fn new(
        endpoint: Arc<TldsEndpoint>,
        timeout: Duration,
        metrics: TldsMetrics,
    ) -> Arc<TldsHealth> {
        Arc::new(TldsHealth {
            described: endpoint.describe().into(),
            endpoint,
            timeout,
            state: Mutex::new(State {
                health: Health::Untried,
                probing: false,
                stopped: false,
            }),
            down: AtomicBool::new(false),
            connecting: Mutex::new(()),
            stopping: Condvar::new(),
            metrics,
        })
    }

    pub fn metrics(&self) -> &TldsMetrics {
        &self.metrics
    }

    pub fn endpoint(&self) -> &Arc<TldsEndpoint> {
        &self.endpoint
    }

    /// `tlds1 at host:port`.
    pub fn described(&self) -> &Arc<str> {
        &self.described
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        unpoisoned(self.state.lock())
    }

    pub fn health(&self) -> Health {
        self.lock().health.clone()
    }

    /// `Err` (why) while the TLDS is skipped: nothing should wait on it.
    pub fn check(&self) -> Result<(), Arc<LinkError>> {
        if !self.down.load(Ordering::Acquire) {
            return Ok(());
        }
        match &self.lock().health {
            Health::Down {
                why, skipped: true, ..
            } => Err(Arc::new(LinkError {
                tlds: Arc::clone(&self.described),
                kind: LinkErrorKind::Down(Arc::clone(why)),
            })),
            _ => Ok(()),
        }
    }

    /// Connects to the TLDS's AS port, one link at a time.
    pub fn connect(&self) -> std::io::Result<std::net::TcpStream> {
        let _one_at_a_time = lock(&self.connecting);
        connection::connect(&self.endpoint.as_addrs, self.timeout)
    }

    /// A connection to the TLDS was opened: a TLDS never tried is up.
    pub fn connected(&self) {
        let mut state = self.lock();
        if matches!(state.health, Health::Untried) {
            state.health = Health::Up {
                since: Instant::now(),
            };
            self.metrics.up.set(1);
        }
    }

    /// The TLDS answered: if it was down, it is back (said once, now).
    pub fn answered(&self) {
        if self.down.load(Ordering::Acquire) {
            let mut state = self.lock();
            self.back_up(&mut state);
        }
    }

    fn back_up(&self, state: &mut State) {
        if let Health::Down { .. } = state.health {
            log::info!("{} is up again", self.described);
        }
        state.health = Health::Up {
            since: Instant::now(),
        };
        self.metrics.up.set(1);
        self.down.store(false, Ordering::Release);
    }

    /// The TLDS failed as `how` says: mark it down (saying so once), and
    /// when it is to be skipped, start probing it.
    pub fn down(self: &Arc<Self>, why: &Arc<LinkError>, how: Downed) {
        let mut state = self.lock();
        if state.stopped {
            return;
        }
        let skipped = how == Downed::Skipped;
        match &mut state.health {
            Health::Down {
                skipped: already, ..
            } => {
                if *already || !skipped {
                    return;
                }
                // Refusing, now silent too: skip it from here on.
                *already = true;
            }
            _ => {
                log::warn!("{} is down: {}", self.described, why.kind);
                self.metrics.up.set(0);
                self.metrics.downs.inc();
                state.health = Health::Down {
                    since: Instant::now(),
                    why: Arc::clone(why),
                    skipped,
                };
                self.down.store(true, Ordering::Release);
            }
        }
        if skipped && !state.probing {
            let prober = Arc::clone(self);
            let started = thread::Builder::new()
                .name("as_server prober".to_owned())
                .spawn(move || prober.probe_until_up());
            // Without a prober the TLDS stays skipped until the AS restarts;
            // say so rather than fail silently.
            match started {
                Ok(_) => state.probing = true,
                Err(err) => log::error!("cannot probe {}: {err}", self.described),
            }
        }
    }

    /// Stops the prober, if one runs: the AS is stopping.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.stopping.notify_all();
    }

    /// Probes a skipped TLDS until it answers (it is back), refuses (the
    /// next burst tries it, as any refusing TLDS), or the AS stops.
    fn probe_until_up(&self) {
        let mut wait = FIRST_WAIT;
        loop {
            {
                let state = self.lock();
                let (state, _) = unpoisoned(self.stopping.wait_timeout_while(
                    state,
                    jittered(wait),
                    |state| !state.stopped,
                ));
                if state.stopped {
                    return;
                }
            }
            let probed = self.probe();
            let mut state = self.lock();
            match probed {
                Probe::Answered => {
                    state.probing = false;
                    if matches!(state.health, Health::Down { .. }) {
                        self.back_up(&mut state);
                    }
                    return;
                }
                Probe::Refused => {
                    state.probing = false;
                    if let Health::Down { skipped, .. } = &mut state.health {
                        *skipped = false;
                    }
                    return;
                }
                Probe::Silent => {
                    if !matches!(state.health, Health::Down { .. }) {
                        // A burst found it answering meanwhile.
                        state.probing = false;
                        return;
                    }
                }
            }
            wait = (wait * 2).min(LONGEST_WAIT);
        }
    }

    /// Whether the TLDS answers a challenge within the timeout.
    fn probe(&self) -> Probe {
        let stream = match connection::connect(&self.endpoint.as_addrs, self.timeout) {
            Ok(stream) => stream,
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => return Probe::Silent,
            Err(_) => return Probe::Refused,
        };
        let mut probe = Connection::new(stream);
        probe
            .reader()
            .limit_each_line(self.timeout, LineClock::FromWait);
        let answered = matches!(
            probe.request(|out| ChallengeRequest("probe").write_to(out)),
            Ok(Some(_))
        );
        probe.close();
        if answered {
            Probe::Answered
        } else {
            Probe::Silent
        }
    }
}

/// What one probe found.
enum Probe {
    Answered,
    Refused,
    Silent,
}

/// `wait`, give or take a fifth at random, and never above
/// [`LONGEST_WAIT`]: probes of TLDS servers that went down together do not
/// stay in step.
fn jittered(wait: Duration) -> Duration {
    let mut random = [0u8; 2];
    let spread = match getrandom::fill(&mut random) {
        Ok(()) => f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX),
        Err(_) => 0.5,
    };
    wait.mul_f64(0.8 + 0.4 * spread).min(LONGEST_WAIT)
}

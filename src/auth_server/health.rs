//! What the AS knows of one TLDS's health, shared by all the links to it:
//! up, or down since when and why.
//!
//! A TLDS that timed out, refused a connection or sent nonsense is marked
//! down: from then on bursts for it fail at once, naming it, instead of
//! each waiting out `--timeout`, so queries for the other TLDS are answered
//! at full speed. A prober thread tries the down TLDS again, waiting 0.5 s,
//! then twice as long each time up to 30 s, and takes it back as soon as
//! it answers. Each change is logged once.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::endpoint::{LinkError, LinkErrorKind, TldsEndpoint};
use crate::connection::{self, Connection, LineClock};
use crate::sync::unpoisoned;
use crate::wire::ChallengeRequest;

/// The first wait before probing a down TLDS, and the longest.
const PROBE_WAITS: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(30));

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
    /// Wakes the prober when the AS stops.
    stopping: Condvar,
}

impl TldsHealth {
    pub fn new(endpoint: Arc<TldsEndpoint>, timeout: Duration) -> Arc<TldsHealth> {
        Arc::new(TldsHealth {
            described: endpoint.describe().into(),
            endpoint,
            timeout,
            state: Mutex::new(State {
                health: Health::Untried,
                probing: false,
                stopped: false,
            }),
            stopping: Condvar::new(),
        })
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

    /// `Err` (why) while the TLDS is down: nothing should wait on it.
    pub fn check(&self) -> Result<(), Arc<LinkError>> {
        match &self.lock().health {
            Health::Down { why, .. } => Err(Arc::new(LinkError {
                tlds: Arc::clone(&self.described),
                kind: LinkErrorKind::Down(Arc::clone(why)),
            })),
            _ => Ok(()),
        }
    }

    /// A connection to the TLDS was opened.
    pub fn connected(&self) {
        let mut state = self.lock();
        if matches!(state.health, Health::Untried) {
            state.health = Health::Up {
                since: Instant::now(),
            };
        }
    }

    /// The TLDS failed in a way that makes waiting on it pointless: mark it
    /// down (saying so once) and start probing it.
    pub fn down(self: &Arc<Self>, why: &Arc<LinkError>) {
        let mut state = self.lock();
        if matches!(state.health, Health::Down { .. }) || state.stopped {
            return;
        }
        log::warn!("{} is down: {}", self.described, why.kind);
        state.health = Health::Down {
            since: Instant::now(),
            why: Arc::clone(why),
        };
        if !state.probing {
            let prober = Arc::clone(self);
            let started = thread::Builder::new()
                .name("as_server prober".to_owned())
                .spawn(move || prober.probe_until_up());
            // Without a prober the TLDS stays down until the AS restarts;
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

    fn probe_until_up(&self) {
        let (mut wait, longest) = PROBE_WAITS;
        loop {
            {
                let state = self.lock();
                let (state, _) = unpoisoned(self.stopping.wait_timeout_while(
                    state,
                    wait,
                    |state| !state.stopped,
                ));
                if state.stopped {
                    return;
                }
            }
            if self.answers() {
                let mut state = self.lock();
                state.probing = false;
                state.health = Health::Up {
                    since: Instant::now(),
                };
                log::info!("{} is up again", self.described);
                return;
            }
            wait = (wait * 2).min(longest);
        }
    }

    /// Whether the TLDS answers a challenge within the timeout.
    fn answers(&self) -> bool {
        let Ok(stream) = connection::connect(&self.endpoint.as_addrs, self.timeout) else {
            return false;
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
        answered
    }
}

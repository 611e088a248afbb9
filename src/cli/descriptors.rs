//! Fitting a server's connection limits to its open-file limit: a
//! connection costs one descriptor, so a server that could be asked for
//! more connections than it may open files would fail at the worst moment.
//! It raises its soft limit to the hard one first; then limits left at
//! their defaults are lowered to fit, the largest first, so a small budget
//! (the AS port's) keeps its slots while the client port gives up what it
//! must (with one warning); a limit the user gave that cannot fit is
//! refused at start, as a usage error naming the flag.

use anyhow::{Context, Result, bail};
use clap::ArgMatches;
use clap::parser::ValueSource;

/// Descriptors a server needs besides one per connection: standard
/// streams, listeners, the files it reads at start, the signal pipe.
pub const SPARE_DESCRIPTORS: u64 = 32;

/// One connection limit of a server's command line.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    /// The flag, e.g. `--max-connections`.
    pub flag: &'static str,
    pub value: u32,
    /// Whether the user gave it (rather than leaving the default).
    pub given: bool,
}

impl ConnectionLimit {
    /// The limit `id` of `matches` (clap's name for it), shown as `flag`.
    pub fn of(matches: &ArgMatches, id: &str, flag: &'static str, value: u32) -> ConnectionLimit {
        let given = !matches!(
            matches.value_source(id),
            None | Some(ValueSource::DefaultValue)
        );
        ConnectionLimit { flag, value, given }
    }
}

/// Why the limits cannot be served.
#[derive(Debug)]
pub enum Unfit {
    /// Limits the user gave need more descriptors than the open-file limit:
    /// a usage error, naming them.
    Given(String),
    /// Even the smallest limits cannot fit.
    TooFew(String),
}

/// Raises the soft open-file limit to the hard one, then fits `limits`
/// (whose connections need one descriptor each, besides `fixed` others and
/// [`SPARE_DESCRIPTORS`]) to it: lowers those left at their defaults, in
/// proportion, logging one warning, or says why it cannot.
pub fn fit(limits: &mut [ConnectionLimit], fixed: u64) -> Result<Result<(), Unfit>> {
    let open_files = rlimit::increase_nofile_limit(u64::MAX)
        .context("cannot read or raise the open-file limit")?;
    Ok(fit_within(limits, fixed, open_files))
}

fn fit_within(limits: &mut [ConnectionLimit], fixed: u64, open_files: u64) -> Result<(), Unfit> {
    let total = |limits: &[ConnectionLimit], pick: fn(&ConnectionLimit) -> bool| -> u64 {
        limits
            .iter()
            .filter(|l| pick(l))
            .map(|l| u64::from(l.value))
            .sum()
    };
    let needed = total(limits, |_| true) + fixed + SPARE_DESCRIPTORS;
    if needed <= open_files {
        return Ok(());
    }
    let given = total(limits, |l| l.given);
    if given + fixed + SPARE_DESCRIPTORS > open_files {
        let flags: Vec<String> = limits
            .iter()
            .filter(|l| l.given)
            .map(|l| format!("{} {}", l.flag, l.value))
            .collect();
        let verb = if flags.len() == 1 { "needs" } else { "need" };
        return Err(Unfit::Given(format!(
            "{} {verb} about {} file descriptors, but the open-file limit is {open_files} \
             (raise it with ulimit -n, or lower the limit)",
            flags.join(" and "),
            given + fixed + SPARE_DESCRIPTORS,
        )));
    }
    let room = open_files - given - fixed - SPARE_DESCRIPTORS;
    let lowered = limits.iter().filter(|l| !l.given).count() as u64;
    if room < lowered {
        return Err(Unfit::TooFew(format!(
            "the open-file limit is {open_files}, too few to serve any connection \
             (raise it with ulimit -n)"
        )));
    }
    // The highest cap under which the defaults, each cut to it, fit: the
    // largest limits come down to it, the smaller ones are left whole.
    let capped = |cap: u64| -> u64 {
        limits
            .iter()
            .filter(|l| !l.given)
            .map(|l| u64::from(l.value).min(cap))
            .sum()
    };
    let (mut low, mut high) = (1, u64::from(u32::MAX));
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if capped(middle) <= room {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    let cap = u32::try_from(low).unwrap_or(u32::MAX);
    let mut said = Vec::new();
    for limit in limits.iter_mut().filter(|l| !l.given && l.value > cap) {
        said.push(format!("{} {} (default {})", limit.flag, cap, limit.value));
        limit.value = cap;
    }
    log::warn!(
        "the open-file limit is {open_files}: serving {} to fit it (raise it with ulimit -n \
         for more)",
        said.join(" and ")
    );
    Ok(())
}

/// Ends the program as clap ends it for a usage error (exit 2), or as any
/// other failure, for limits that cannot be served.
pub fn refuse(unfit: Unfit, command: &mut clap::Command) -> Result<()> {
    match unfit {
        Unfit::Given(message) => command
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit(),
        Unfit::TooFew(message) => bail!(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(given: [bool; 2]) -> Vec<ConnectionLimit> {
        vec![
            ConnectionLimit {
                flag: "--max-connections",
                value: 1024,
                given: given[0],
            },
            ConnectionLimit {
                flag: "--max-as-connections",
                value: 64,
                given: given[1],
            },
        ]
    }

    #[test]
    fn defaults_shrink_largest_first_to_fit() {
        let mut fitted = limits([false, false]);
        assert!(fit_within(&mut fitted, 0, 1024).is_ok());
        let values: Vec<u32> = fitted.iter().map(|l| l.value).collect();
        assert_eq!(values, [1024 - 64 - 32, 64]);
        // Too few even for the small one: both come down to one cap.
        let mut fitted = limits([false, false]);
        assert!(fit_within(&mut fitted, 0, 32 + 100).is_ok());
        let values: Vec<u32> = fitted.iter().map(|l| l.value).collect();
        assert_eq!(values, [50, 50]);
    }

    #[test]
    fn a_given_limit_is_kept_and_the_default_fits_around_it() {
        let mut fitted = limits([false, true]);
        assert!(fit_within(&mut fitted, 0, 1024).is_ok());
        assert_eq!(fitted[0].value, 1024 - 64 - 32);
        assert_eq!(fitted[1].value, 64);
    }

    #[test]
    fn a_given_limit_that_cannot_fit_is_a_usage_error_naming_it() {
        let mut fitted = limits([true, false]);
        match fit_within(&mut fitted, 2, 1024) {
            Err(Unfit::Given(message)) => assert_eq!(
                message,
                "--max-connections 1024 needs about 1058 file descriptors, but the open-file \
                 limit is 1024 (raise it with ulimit -n, or lower the limit)"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_that_fit_are_left_alone() {
        let mut fitted = limits([false, false]);
        assert!(fit_within(&mut fitted, 0, 20_000).is_ok());
        assert_eq!(fitted[0].value, 1024);
        assert_eq!(fitted[1].value, 64);
    }
}

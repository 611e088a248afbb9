//! `cargo bench --bench micro`: the per-concern costs, in-process: a table
//! lookup at two table sizes, and HMAC-MD5 one at a time and in a burst.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "a benchmark: a panic here is a failed benchmark"
)]

mod support;

use std::time::Instant;

use authdns::digest::{Signer, sign_many};
use authdns::table::Table;

use support::{big_table_text, print_table, row};

fn main() {
    let quick = std::env::var_os("AUTHDNS_BENCH_QUICK").is_some();
    let big = if quick { 100_000 } else { 1_000_000 };
    let (one, side_by_side) = hmac_ns();
    print_table(&[
        row("lookup, ns, 10 records", None, lookup_ns(10), ""),
        row(
            &format!("lookup, ns, {big} records"),
            None,
            lookup_ns(big),
            "",
        ),
        row("HMAC-MD5, ns per digest, one at a time", None, one, ""),
        row(
            "HMAC-MD5, ns per digest, a burst (sign_many)",
            None,
            side_by_side,
            "",
        ),
    ]);
}

/// Mean nanoseconds per lookup of names present in a table of `records`.
fn lookup_ns(records: usize) -> f64 {
    let table = Table::parse(big_table_text(records).as_bytes()).expect("a valid table");
    let names: Vec<String> = (0..records.min(100_000))
        .map(|i| format!("HOST{:07}.example.org", (i * 7919) % records))
        .collect();
    let rounds = (2_000_000 / names.len().max(1)).max(1);
    let started = Instant::now();
    let mut found = 0;
    for _ in 0..rounds {
        for name in &names {
            found += usize::from(table.lookup(std::hint::black_box(name)).is_some());
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(found, rounds * names.len());
    elapsed.as_nanos() as f64 / found as f64
}

/// Nanoseconds per HMAC-MD5 of a 15-byte challenge: one at a time, and in a
/// burst of 1024 through `sign_many` (sixteen side by side).
fn hmac_ns() -> (f64, f64) {
    let signer = Signer::new(b"key-tlds1");
    let challenges: Vec<String> = (0..1024).map(|i| format!("challenge{i:06}")).collect();
    let work: Vec<(&Signer, &[u8])> = challenges
        .iter()
        .map(|challenge| (&signer, challenge.as_bytes()))
        .collect();
    let rounds = 1000;
    let mut check = 0u64;
    let started = Instant::now();
    for _ in 0..rounds {
        for (signer, challenge) in &work {
            check += signer
                .sign(std::hint::black_box(challenge))
                .to_hex()
                .as_str()
                .len() as u64;
        }
    }
    let one = started.elapsed();
    let started = Instant::now();
    for _ in 0..rounds {
        sign_many(std::hint::black_box(&work), |digest| {
            check += digest.to_hex().as_str().len() as u64;
        });
    }
    let burst = started.elapsed();
    let digests = (rounds * work.len()) as f64;
    assert_eq!(check, 2 * 32 * digests as u64);
    (
        one.as_nanos() as f64 / digests,
        burst.as_nanos() as f64 / digests,
    )
}

//! authdns: authenticated hostname lookup over a newline-delimited TCP protocol.
//!
//! The library holds everything the four programs share; each binary under
//! `src/bin` holds only its command line, opens its listeners, and hands a
//! plain config to one role's `run`.
//!
//! - [`digest`]: HMAC-MD5 signing (singly, or sixteen side by side for bursts),
//!   hex form, constant-time comparison.
//! - [`key`]: a TLDS's secret key and its file format.
//! - [`table`]: the TLDS record table and its file format.
//! - [`query`]: the client's query file format, read a line at a time.
//! - [`text_file`]: what every file format shares (byte-order mark, blank
//!   and comment lines).
//! - [`wire`]: every protocol message, parsed and formatted in one place.
//! - [`scan`]: word-at-a-time byte scans for line ends, separators and controls.
//! - [`connection`]: lines in and out of one socket, with a hard line-length
//!   limit, and the request/reply loop every server port runs.
//! - [`server`]: accepting connections under limits, one thread each, until
//!   a [`server::Stopper`] says stop.
//! - [`tlds`], [`auth_server`], [`client`]: the three roles.
//! - [`cli`]: what the programs' command lines share.
//! - `sync`: the one rule for locks whose holder panicked.
//! - `packed`: many strings end to end in one buffer, for batches.

pub mod auth_server;
pub mod cli;
pub mod client;
pub mod connection;
pub mod digest;
pub mod dns;
pub mod key;
pub mod metrics;
mod packed;
pub mod query;
pub mod scan;
pub mod server;
mod sync;
pub mod table;
pub mod text_file;
pub mod tlds;
pub mod wire;

//! authdns: authenticated hostname lookup over a newline-delimited TCP protocol.
//!
//! The library holds everything the four programs share; each binary under
//! `src/bin` only calls one role's `main`.
//!
//! - [`digest`]: HMAC-MD5 signing (singly, or eight side by side for bursts),
//!   hex form, constant-time comparison, key files.
//! - [`table`]: the TLDS record table and its file format.
//! - [`query`]: the client's query file format.
//! - [`wire`]: every protocol message, parsed and formatted in one place.
//! - [`scan`]: word-at-a-time byte scans for line ends, separators and controls.
//! - [`connection`]: framing bytes into lines, with a hard line-length limit.
//! - [`server`]: accepting connections under limits, one thread each, and the
//!   pipelined request/reply loop.
//! - [`tlds`], [`auth_server`], [`client`]: the three roles.
//! - [`cli`]: what the command lines share (binding, resolving, exit codes).

pub mod auth_server;
pub mod client;
pub mod connection;
pub mod digest;
pub mod query;
pub mod scan;
pub mod server;
pub mod table;
pub mod tlds;
pub mod wire;

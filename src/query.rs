//! The client's query file: one `key challenge hostname` per line, separated
//! by spaces or tabs; blank lines and `#` comments are skipped.

use std::io::{self, BufRead};

use crate::text_file;
use crate::wire::{self, WireError};

/// One query line, borrowed from the file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    pub key: &'a str,
    pub challenge: &'a str,
    pub hostname: &'a str,
}

/// Parses one line (without its `\n`; a trailing `\r` is dropped).
/// `Ok(None)` is a blank or comment line.
pub fn parse_line(raw: &[u8]) -> Result<Option<Query<'_>>, WireError> {
    if text_file::is_skipped(raw) {
        return Ok(None);
    }
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = wire::text(raw)?;
    let [key, challenge, hostname] = wire::fields(text, "3 fields: <key> <challenge> <hostname>")?;
    Ok(Some(Query {
        key,
        challenge: wire::check_challenge(challenge)?,
        hostname: wire::check_hostname(hostname)?,
    }))
}

/// One line of a query file, as the client sees it.
#[derive(Debug)]
pub enum Job<'a> {
    Ask(Query<'a>),
    /// Line `line` (1-based) is not a query.
    Malformed {
        line: usize,
        reason: WireError,
    },
}

/// Reads a query file a line at a time, so a client's memory does not grow
/// with the number of queries.
pub struct QueryLines<R> {
    input: R,
    /// The current line's bytes, reused from line to line.
    line: Vec<u8>,
    number: usize,
    /// Malformed lines read ahead by [`QueryLines::has_query`], and whether
    /// `line` holds a query it found.
    ahead: std::collections::VecDeque<(usize, WireError)>,
    query_ahead: bool,
}

impl<R: BufRead> QueryLines<R> {
    pub fn new(input: R) -> QueryLines<R> {
        QueryLines {
            input,
            line: Vec::new(),
            number: 0,
            ahead: std::collections::VecDeque::new(),
            query_ahead: false,
        }
    }

    /// Whether any query lies ahead, reading as far as the first one. The
    /// lines it passes over are still given out by [`QueryLines::next_job`].
    pub fn has_query(&mut self) -> io::Result<bool> {
        while !self.query_ahead {
            if !self.read_line()? {
                return Ok(false);
            }
            match parse_line(&self.line) {
                Ok(Some(_)) => self.query_ahead = true,
                Ok(None) => {}
                Err(reason) => self.ahead.push_back((self.number, reason)),
            }
        }
        Ok(true)
    }

    /// The next query or malformed line; `None` at the end of the file.
    pub fn next_job(&mut self) -> io::Result<Option<Job<'_>>> {
        if let Some((line, reason)) = self.ahead.pop_front() {
            return Ok(Some(Job::Malformed { line, reason }));
        }
        if !std::mem::take(&mut self.query_ahead) {
            loop {
                if !self.read_line()? {
                    return Ok(None);
                }
                if !text_file::is_skipped(&self.line) {
                    break;
                }
            }
        }
        Ok(Some(match parse_line(&self.line) {
            Ok(Some(query)) => Job::Ask(query),
            Ok(None) => unreachable!("skipped lines were passed over above"),
            Err(reason) => Job::Malformed {
                line: self.number,
                reason,
            },
        }))
    }

    /// Reads the next line into `line`, without its `\n`; false at the end.
    fn read_line(&mut self) -> io::Result<bool> {
        self.line.clear();
        if self.input.read_until(b'\n', &mut self.line)? == 0 {
            return Ok(false);
        }
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        self.number += 1;
        if self.number == 1 {
            let bom = self.line.len() - text_file::without_bom(&self.line).len();
            self.line.drain(..bom);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_spaces_tabs_crlf() {
        assert_eq!(
            parse_line(b"k5678 \tfoxtrot   Amazon.org\r"),
            Ok(Some(Query {
                key: "k5678",
                challenge: "foxtrot",
                hostname: "Amazon.org"
            }))
        );
    }

    #[test]
    fn skips_blank_and_comment_lines() {
        assert_eq!(parse_line(b""), Ok(None));
        assert_eq!(parse_line(b" \t\r"), Ok(None));
        assert_eq!(parse_line(b"  # key challenge host"), Ok(None));
    }

    #[test]
    fn reports_bad_lines() {
        assert!(matches!(
            parse_line(b"only two"),
            Err(WireError::FieldCount { found: 2, .. })
        ));
        assert_eq!(
            parse_line(format!("k {} h", "c".repeat(256)).as_bytes()),
            Err(WireError::ChallengeTooLong(256))
        );
        assert_eq!(parse_line(b"k c h\xff"), Err(WireError::NotUtf8));
    }

    fn jobs(text: &[u8]) -> Vec<String> {
        let mut lines = QueryLines::new(text);
        let mut out = Vec::new();
        while let Some(job) = lines.next_job().unwrap() {
            out.push(match job {
                Job::Ask(query) => query.hostname.to_owned(),
                Job::Malformed { line, .. } => format!("bad {line}"),
            });
        }
        out
    }

    #[test]
    fn numbers_lines_from_one_and_tolerates_a_missing_final_newline() {
        assert_eq!(jobs(b"# c\nk c h\n\nk2 c2 h2"), ["h", "h2"]);
        assert_eq!(jobs(b"k c h\nbad\r\n\n\nk c h3\n"), ["h", "bad 2", "h3"]);
        assert_eq!(jobs(b""), Vec::<String>::new());
    }

    #[test]
    fn looking_ahead_for_a_query_loses_no_line() {
        let mut lines = QueryLines::new(&b"bad\n# c\nworse line\nk c h\nk c h2\n"[..]);
        assert!(lines.has_query().unwrap());
        assert!(lines.has_query().unwrap());
        let mut seen = Vec::new();
        while let Some(job) = lines.next_job().unwrap() {
            seen.push(match job {
                Job::Ask(query) => query.hostname.to_owned(),
                Job::Malformed { line, .. } => format!("bad {line}"),
            });
        }
        assert_eq!(seen, ["bad 1", "bad 3", "h", "h2"]);
        let mut none = QueryLines::new(&b"bad\n\n"[..]);
        assert!(!none.has_query().unwrap());
        assert!(matches!(
            none.next_job().unwrap(),
            Some(Job::Malformed { line: 1, .. })
        ));
        assert!(none.next_job().unwrap().is_none());
    }
}

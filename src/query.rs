//! The client's query file: one `key challenge hostname` per line, separated
//! by spaces or tabs; blank lines and `#` comments are skipped.

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
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let text = wire::text(raw)?;
    let trimmed = text.trim_matches([' ', '\t']);
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let [key, challenge, hostname] = wire::fields(text, "3 fields: <key> <challenge> <hostname>")?;
    Ok(Some(Query {
        key,
        challenge: wire::check_challenge(challenge)?,
        hostname: wire::check_hostname(hostname)?,
    }))
}

/// Splits a query file into numbered lines (1-based) and parses each.
pub fn parse_file(
    bytes: &[u8],
) -> impl Iterator<Item = (usize, Result<Option<Query<'_>>, WireError>)> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(index, raw)| (index + 1, parse_line(raw)))
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

    #[test]
    fn numbers_lines_from_one_and_tolerates_a_missing_final_newline() {
        let numbered: Vec<_> = parse_file(b"# c\nk c h\n\nk2 c2 h2")
            .filter_map(|(n, q)| q.ok().flatten().map(|q| (n, q.hostname)))
            .collect();
        assert_eq!(numbered, [(2, "h"), (4, "h2")]);
        assert_eq!(parse_file(b"k c h\n").count(), 1);
    }
}

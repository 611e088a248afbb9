//! What every text file the programs read (tables, keys, queries) has in
//! common: a UTF-8 byte-order mark at the start is not content (editors on
//! some systems add one, and it would otherwise become part of the first
//! record or the key), and blank lines and `#` comment lines are skipped
//! before anything else is checked.

const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// `bytes` without a leading byte-order mark.
pub fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BYTE_ORDER_MARK).unwrap_or(bytes)
}

/// Whether one line (without its `\n`) holds nothing but spaces, tabs and a
/// `\r`, or is a comment: its first other byte is `#`. Judged on the bytes,
/// so a comment may hold anything.
pub fn is_skipped(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.iter().find(|&&byte| byte != b' ' && byte != b'\t') {
        None | Some(b'#') => true,
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_not_content() {
        assert_eq!(without_bom(b"\xEF\xBB\xBFk1234\n"), b"k1234\n");
        assert_eq!(without_bom(b"k1234\n"), b"k1234\n");
        assert_eq!(without_bom(b"\xEF\xBB"), b"\xEF\xBB");
    }

    #[test]
    fn blank_and_comment_lines_are_skipped_whatever_they_hold() {
        for skipped in [
            &b""[..],
            b"  \t",
            b"\r",
            b" \t\r",
            b"# c",
            b"  #\x00\xff",
            b"#",
        ] {
            assert!(is_skipped(skipped), "{skipped:?}");
        }
        for kept in [&b"k c h"[..], b" k", b"\rx", b"x#"] {
            assert!(!is_skipped(kept), "{kept:?}");
        }
    }
}

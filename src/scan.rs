//! Word-at-a-time byte scans, eight bytes per step and no `unsafe`. Every
//! hop scans every line for its end, its field separators and stray control
//! characters; after HMAC these loops are the hottest code in the system,
//! and lines are short, so a byte-at-a-time loop spends most of its time on
//! the tail that vector code leaves behind.
//!
//! Each test below returns a *mask*: a `u64` with the high bit of every
//! matching byte set and nothing else, exact (no false hits), so masks can be
//! combined with `|`, `&` and `!` and counted with `count_ones`.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// The bytes of `word` equal to `byte`.
pub fn equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    // Adding 0x7f to a byte's low seven bits carries into its high bit
    // exactly when they are not all zero, and never into the next byte.
    !(((x & LOWS) + LOWS) | x) & HIGHS
}

/// The ASCII bytes of `word` below `limit` (at most 0x80).
pub fn below(word: u64, limit: u8) -> u64 {
    let step = ONES * u64::from(0x80u8.saturating_sub(limit));
    // For an ASCII byte b, b + (0x80 - limit) reaches the high bit exactly
    // when b >= limit, and at most 0xff: no carry into the next byte.
    !((word & LOWS) + step) & !word & HIGHS
}

/// The bytes of `word` that are not ASCII.
pub fn non_ascii(word: u64) -> u64 {
    word & HIGHS
}

/// The bytes that separate fields: space and tab.
pub fn separators(word: u64) -> u64 {
    equal(word, b' ') | equal(word, b'\t')
}

/// Byte positions within a word of a mask's matches, lowest first.
pub fn positions(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let first = (mask != 0).then(|| mask.trailing_zeros() as usize / 8);
        mask &= mask.wrapping_sub(1);
        first
    })
}

/// Calls `visit` with each little-endian word of `bytes` and its offset;
/// the last, partial word is padded with `pad`, which callers choose to
/// match nothing. `visit` returns `false` to stop early.
#[inline(always)]
pub fn each_word(bytes: &[u8], pad: u8, mut visit: impl FnMut(usize, u64) -> bool) {
    let (whole, tail) = bytes.as_chunks::<8>();
    let mut offset = 0;
    for word in whole {
        if !visit(offset, u64::from_le_bytes(*word)) {
            return;
        }
        offset += 8;
    }
    if tail.is_empty() {
        return;
    }
    let padding = ONES * u64::from(pad);
    match bytes.last_chunk::<8>() {
        // Load the last eight bytes in one go, and replace the ones already
        // visited with padding.
        Some(last) => {
            let unseen = u64::MAX << (8 * (8 - tail.len()));
            let word = u64::from_le_bytes(*last) & unseen | padding & !unseen;
            visit(bytes.len() - 8, word);
        }
        None => {
            let mut word = padding.to_le_bytes();
            word.iter_mut()
                .zip(tail)
                .for_each(|(slot, byte)| *slot = *byte);
            visit(0, u64::from_le_bytes(word));
        }
    }
}

/// The position of the first `needle` in `haystack`.
pub fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    let mut found = None;
    each_word(haystack, !needle, |offset, word| {
        found = positions(equal(word, needle)).next().map(|at| offset + at);
        found.is_none()
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every position of a word, beside every other.
    fn words_to_try() -> impl Iterator<Item = [u8; 8]> {
        (0..=255u8).flat_map(|byte| {
            (0..8).flat_map(move |at| {
                [0x00, 0x20, 0x7f, 0x80, 0xff, byte.wrapping_add(1)].map(|fill| {
                    let mut word = [fill; 8];
                    word[at] = byte;
                    word
                })
            })
        })
    }

    fn mask_of(word: [u8; 8], test: impl Fn(u8) -> bool) -> u64 {
        word.iter()
            .enumerate()
            .filter(|(_, b)| test(**b))
            .map(|(i, _)| 0x80u64 << (8 * i))
            .sum()
    }

    #[test]
    fn masks_are_exact() {
        for word in words_to_try() {
            let value = u64::from_le_bytes(word);
            for byte in [b' ', b'\t', b'\n', 0, 0x7f, 0x80, 0xff] {
                assert_eq!(equal(value, byte), mask_of(word, |b| b == byte), "{word:?}");
            }
            for limit in [0x20, 0x80, 1] {
                assert_eq!(
                    below(value, limit),
                    mask_of(word, |b| b < limit),
                    "{word:?}"
                );
            }
            assert_eq!(non_ascii(value), mask_of(word, |b| b >= 0x80));
        }
    }

    #[test]
    fn positions_lists_matches_in_order() {
        let word = u64::from_le_bytes(*b"a b\tc  d");
        assert_eq!(
            positions(separators(word)).collect::<Vec<_>>(),
            [1, 3, 5, 6]
        );
        assert_eq!(positions(0).count(), 0);
    }

    #[test]
    fn find_byte_agrees_with_a_plain_search() {
        let haystack: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        for needle in 0..=255u8 {
            for start in 0..20 {
                let slice = &haystack[start..];
                assert_eq!(
                    find_byte(needle, slice),
                    slice.iter().position(|&b| b == needle),
                    "needle {needle} start {start}"
                );
            }
        }
        assert_eq!(find_byte(b'\n', b""), None);
        assert_eq!(find_byte(b'\n', b"\x8a\x0b\n"), Some(2));
        assert_eq!(find_byte(0xff, b"\x00"), None);
    }
}

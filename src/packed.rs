//! Many short strings kept end to end in one buffer, each with a tag beside
//! it: how a burst's challenges, hostnames and result lines travel. A batch
//! costs two allocations however many strings it holds, and both are reused
//! from batch to batch once cleared.

/// Strings end to end in one `String`, each with a `T`, in the order pushed.
#[derive(Debug, Clone)]
pub(crate) struct Packed<T> {
    text: String,
    /// Each string's tag, and where it ends in `text` (it starts where the
    /// one before it ends).
    entries: Vec<(usize, T)>,
}

impl<T> Default for Packed<T> {
    fn default() -> Self {
        Packed {
            text: String::new(),
            entries: Vec::new(),
        }
    }
}

impl<T> Packed<T> {
    /// Appends one string, made of `parts` end to end.
    pub(crate) fn push_parts(&mut self, parts: &[&str], tag: T) {
        for part in parts {
            self.text.push_str(part);
        }
        self.entries.push((self.text.len(), tag));
    }

    pub(crate) fn push(&mut self, string: &str, tag: T) {
        self.push_parts(&[string], tag);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of text held, for deciding when to compact.
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// Empties it, keeping both buffers for the next batch.
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.entries.clear();
    }

    /// String number `at`, and its tag.
    pub(crate) fn get(&self, at: usize) -> Option<(&str, &T)> {
        let start = match at.checked_sub(1) {
            Some(before) => self.entries.get(before)?.0,
            None => 0,
        };
        let (end, tag) = self.entries.get(at)?;
        Some((self.text.get(start..*end)?, tag))
    }

    /// Each string and its tag, in the order pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        let mut start = 0;
        self.entries.iter().map(move |(end, tag)| {
            // Every end was the text's length when pushed, and the text only
            // grows until cleared, when the ends go too: never empty.
            let string = self.text.get(start..*end).unwrap_or_default();
            start = *end;
            (string, tag)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_come_back_whole_with_their_tags_in_order() {
        let mut packed = Packed::default();
        packed.push("alpha", 1);
        packed.push("", 2);
        packed.push_parts(&["be", "ta"], 3);
        packed.push("ünïcode", 4);
        let all: Vec<(&str, i32)> = packed.iter().map(|(s, &t)| (s, t)).collect();
        assert_eq!(all, [("alpha", 1), ("", 2), ("beta", 3), ("ünïcode", 4)]);
        assert_eq!(packed.get(2), Some(("beta", &3)));
        assert_eq!(packed.get(0), Some(("alpha", &1)));
        assert_eq!(packed.get(4), None);
        assert_eq!(packed.len(), 4);
        packed.clear();
        assert!(packed.is_empty());
        assert_eq!(packed.text_len(), 0);
        packed.push("again", 5);
        assert_eq!(packed.get(0), Some(("again", &5)));
    }
}

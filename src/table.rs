//! A TLDS's record table: loading it from a tab- or space-separated file and
//! looking hostnames up by the protocol's rules (ASCII case-insensitive, one
//! trailing dot ignored).
//!
//! The table is built for a million records: every record's reply line
//! (`Hostname address flag`) lives in one shared string, and an
//! open-addressing index of eight-byte slots points into it. Lookup cost does
//! not grow with the table (one slot read and one text read for a hit), and
//! memory stays close to the file's own size instead of paying for a `String`
//! (and an allocation) per field.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::text_file;
use crate::wire::{MAX_HOSTNAME, MAX_LINE};

/// What is wrong with one line of a table file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableErrorKind {
    FieldCount(usize),
    EmptyHostname,
    HostnameTooLong(usize),
    ControlCharacter,
    NotIpv4(String),
    Duplicate { hostname: String, first_line: usize },
    RecordTooLong(usize),
    NotUtf8,
    TooLarge,
}

impl fmt::Display for TableErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableErrorKind::FieldCount(found) => write!(
                f,
                "expected 3 fields (hostname address flag), found {found}"
            ),
            TableErrorKind::EmptyHostname => f.write_str("empty hostname"),
            TableErrorKind::HostnameTooLong(len) => {
                write!(f, "hostname is {len} bytes, the limit is {MAX_HOSTNAME}")
            }
            TableErrorKind::ControlCharacter => f.write_str("control character in record"),
            TableErrorKind::NotIpv4(address) => {
                write!(f, "flag A needs an IPv4 address, found '{address}'")
            }
            TableErrorKind::Duplicate {
                hostname,
                first_line,
            } => write!(
                f,
                "hostname '{hostname}' is listed twice (first on line {first_line})"
            ),
            TableErrorKind::RecordTooLong(len) => {
                write!(f, "record is {len} bytes, the limit is {MAX_LINE}")
            }
            TableErrorKind::NotUtf8 => f.write_str("line is not valid UTF-8"),
            TableErrorKind::TooLarge => f.write_str("table is larger than 4 GiB"),
        }
    }
}

/// A table line that could not be loaded, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    pub line: usize,
    pub kind: TableErrorKind,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)
    }
}

impl std::error::Error for TableError {}

/// Why a table file could not be loaded; displays as `path:line: reason`.
#[derive(Debug)]
pub enum LoadError {
    Io(PathBuf, std::io::Error),
    Parse(PathBuf, TableError),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(path, _) => write!(f, "cannot read table {}", path.display()),
            LoadError::Parse(path, err) => {
                write!(f, "{}:{}: {}", path.display(), err.line, err.kind)
            }
        }
    }
}

/// The cause is either the source (an I/O error, shown after the message
/// by whoever prints the chain) or part of the message (a line's reason),
/// never both, so no message repeats its cause.
impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io(_, err) => Some(err),
            LoadError::Parse(..) => None,
        }
    }
}

/// The part of a hostname that lookups compare: without one trailing dot.
pub fn lookup_name(hostname: &str) -> &str {
    hostname.strip_suffix('.').unwrap_or(hostname)
}

/// One index slot, packed in eight bytes: where a record's reply line starts
/// in [`Table::text`], its length, and sixteen bits of its name's hash. A
/// lookup reads one slot, and touches the text only when the tag matches, so
/// a hit costs two memory reads however large the table is.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot(u64);

impl Slot {
    /// No record has length 0, so the all-zero slot is free.
    const EMPTY: Slot = Slot(0);

    fn new(start: u32, len: u16, tag: u16) -> Slot {
        Slot(u64::from(start) << 32 | u64::from(len) << 16 | u64::from(tag))
    }

    fn start(self) -> usize {
        (self.0 >> 32) as usize
    }

    fn len(self) -> usize {
        (self.0 >> 16 & 0xffff) as usize
    }

    fn tag(self) -> u16 {
        self.0 as u16
    }
}

/// The loaded records.
pub struct Table {
    /// Every record's reply line, in file order, each ended by `\n`.
    text: String,
    records: usize,
    slots: Vec<Slot>,
    hasher: RandomState,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("records", &self.records)
            .finish()
    }
}

impl Table {
    pub fn load(path: &Path) -> Result<Table, LoadError> {
        let bytes = std::fs::read(path).map_err(|err| LoadError::Io(path.to_owned(), err))?;
        Table::parse(&bytes).map_err(|err| LoadError::Parse(path.to_owned(), err))
    }

    /// Parses a whole table file; the error is its first problem.
    pub fn parse(bytes: &[u8]) -> Result<Table, TableError> {
        Table::check(bytes).map_err(|mut problems| problems.swap_remove(0))
    }

    /// Parses a whole table file; the error is every problem in it, in line
    /// order (a duplicate after the line problems).
    pub fn check(bytes: &[u8]) -> Result<Table, Vec<TableError>> {
        let mut builder = Builder::with_capacity(bytes.len());
        let bytes = text_file::without_bom(bytes);
        let mut problems = Vec::new();
        for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_number = index + 1;
            if let Err(kind) = builder.add_line(raw, line_number) {
                problems.push(TableError {
                    line: line_number,
                    kind,
                });
            }
        }
        let (table, duplicates) = builder.finish();
        problems.extend(duplicates);
        if problems.is_empty() {
            Ok(table)
        } else {
            Err(problems)
        }
    }

    pub fn len(&self) -> usize {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The record for `hostname` as its reply line, `Hostname address flag`.
    pub fn lookup(&self, hostname: &str) -> Option<&str> {
        let wanted = lookup_name(hostname);
        if wanted.len() > MAX_HOSTNAME || self.slots.is_empty() {
            return None;
        }
        match self.probe(wanted) {
            Probe::Found(slot) => self.line(slot),
            Probe::Free { .. } => None,
        }
    }

    /// Walks `name`'s probe sequence to its record's slot, or to the free
    /// slot where it would go. The index always has a free slot (it is sized
    /// above the record count), so the walk ends.
    fn probe(&self, name: &str) -> Probe {
        let (mut index, tag) = self.position(name);
        while let Some(slot) = self.slots.get(index).copied() {
            if slot == Slot::EMPTY {
                return Probe::Free { index, tag };
            }
            if slot.tag() == tag
                && let Some(line) = self.line(slot)
                && record_name(line).eq_ignore_ascii_case(name)
            {
                return Probe::Found(slot);
            }
            index = (index + 1) & (self.slots.len() - 1);
        }
        // Only an empty index has no slot to read.
        Probe::Free { index, tag }
    }

    /// Every record's reply line, in file order.
    pub fn records(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }

    fn line(&self, slot: Slot) -> Option<&str> {
        self.text.get(slot.start()..slot.start() + slot.len())
    }

    /// Where `name`'s probe sequence starts, and its tag.
    fn position(&self, name: &str) -> (usize, u16) {
        let mut lowered = [0u8; MAX_HOSTNAME];
        let mut hasher = self.hasher.build_hasher();
        if let Some(buffer) = lowered.get_mut(..name.len()) {
            for (out, byte) in buffer.iter_mut().zip(name.bytes()) {
                *out = byte.to_ascii_lowercase();
            }
            hasher.write(buffer);
        }
        let hash = hasher.finish();
        let mask = self.slots.len().saturating_sub(1);
        ((hash as usize) & mask, (hash >> 48) as u16)
    }
}

/// Where a name stands in the index.
enum Probe {
    Found(Slot),
    Free { index: usize, tag: u16 },
}

/// The compared name of a reply line: its first field, without a trailing dot.
fn record_name(line: &str) -> &str {
    lookup_name(
        line.split(' ')
            .next()
            .expect("split yields at least one field"),
    )
}

/// Accumulates records while a file is parsed. `placed` (each record's start
/// in the text and its line number) lives only until the index is built.
struct Builder {
    text: String,
    placed: Vec<(u32, u32)>,
}

impl Builder {
    fn with_capacity(bytes: usize) -> Builder {
        Builder {
            text: String::with_capacity(bytes),
            placed: Vec::new(),
        }
    }

    fn add_line(&mut self, raw: &[u8], line_number: usize) -> Result<(), TableErrorKind> {
        if text_file::is_skipped(raw) {
            return Ok(());
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| TableErrorKind::NotUtf8)?;
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(TableErrorKind::ControlCharacter);
        }
        let mut fields = line.split([' ', '\t']).filter(|field| !field.is_empty());
        let (Some(hostname), Some(address), Some(flag), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            let found = line.split([' ', '\t']).filter(|f| !f.is_empty()).count();
            return Err(TableErrorKind::FieldCount(found));
        };
        if lookup_name(hostname).is_empty() {
            return Err(TableErrorKind::EmptyHostname);
        }
        if hostname.len() > MAX_HOSTNAME {
            return Err(TableErrorKind::HostnameTooLong(hostname.len()));
        }
        if flag == "A" && address.parse::<Ipv4Addr>().is_err() {
            return Err(TableErrorKind::NotIpv4(address.to_owned()));
        }
        let len = hostname.len() + address.len() + flag.len() + 2;
        if len > MAX_LINE {
            return Err(TableErrorKind::RecordTooLong(len));
        }
        let start = u32::try_from(self.text.len()).map_err(|_| TableErrorKind::TooLarge)?;
        if u32::try_from(self.text.len() + len + 1).is_err() {
            return Err(TableErrorKind::TooLarge);
        }
        for part in [hostname, " ", address, " ", flag, "\n"] {
            self.text.push_str(part);
        }
        let line_number = u32::try_from(line_number).unwrap_or(u32::MAX);
        self.placed.push((start, line_number));
        Ok(())
    }

    /// The table, and a problem for each record whose hostname an earlier
    /// record already has (the later one is left out).
    fn finish(self) -> (Table, Vec<TableError>) {
        let mut duplicates = Vec::new();
        let count = self.placed.len();
        let capacity = (count + count / 3 + 1).next_power_of_two().max(8);
        let mut table = Table {
            text: self.text,
            records: count,
            slots: vec![Slot::EMPTY; capacity],
            hasher: RandomState::new(),
        };
        for &(start, line_number) in &self.placed {
            let line = table
                .text
                .get(start as usize..)
                .and_then(|rest| rest.lines().next())
                .expect("each placed record starts a line of the table's text");
            let name = record_name(line);
            match table.probe(name) {
                Probe::Free { index, tag } => {
                    // Records are at most MAX_LINE (1024) bytes: the length fits.
                    if let Some(cell) = table.slots.get_mut(index) {
                        *cell = Slot::new(start, line.len() as u16, tag);
                    }
                }
                Probe::Found(first) => {
                    // `placed` is in text order, so the first record's line
                    // number is found by its start.
                    let first_line = self
                        .placed
                        .binary_search_by_key(&(first.start() as u32), |&(s, _)| s)
                        .ok()
                        .and_then(|i| self.placed.get(i))
                        .map_or(0, |&(_, line)| line as usize);
                    duplicates.push(TableError {
                        line: line_number as usize,
                        kind: TableErrorKind::Duplicate {
                            hostname: name.to_owned(),
                            first_line,
                        },
                    });
                }
            }
        }
        table.text.shrink_to_fit();
        (table, duplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_reports_every_problem_in_line_order() {
        let text = "a.com 1.1.1.1 A\nbad\nb.com 300.0.0.1 A\nA.COM 2.2.2.2 A\nc.com 3.3.3.3 A\nc.com. 4.4.4.4 A\n";
        let problems = Table::check(text.as_bytes()).unwrap_err();
        let lines: Vec<usize> = problems.iter().map(|problem| problem.line).collect();
        assert_eq!(lines, [2, 3, 4, 6]);
        assert_eq!(Table::parse(text.as_bytes()).unwrap_err().line, 2);
    }

    fn parse(text: &str) -> Result<Table, TableError> {
        Table::parse(text.as_bytes())
    }

    #[test]
    fn tabs_spaces_comments_blank_lines_crlf_and_no_final_newline() {
        let table = parse(
            "# a comment\r\n\
             \r\n\
             Amazon.org\t94.5.6.7\tA\r\n\
             \t  \n\
             google.com   8.8.8.8 \t A\n\
             \t# indented comment\n\
             example.net\t-\tNS",
        )
        .unwrap();
        assert_eq!(table.len(), 3);
        assert_eq!(table.lookup("amazon.org"), Some("Amazon.org 94.5.6.7 A"));
        assert_eq!(table.lookup("google.com"), Some("google.com 8.8.8.8 A"));
        assert_eq!(table.lookup("example.net"), Some("example.net - NS"));
        assert_eq!(
            table.records().collect::<Vec<_>>(),
            [
                "Amazon.org 94.5.6.7 A",
                "google.com 8.8.8.8 A",
                "example.net - NS"
            ]
        );
    }

    #[test]
    fn lookup_is_case_insensitive_and_ignores_one_trailing_dot() {
        let table = parse("Amazon.org\t94.5.6.7\tA\nDotted.example.\t1.2.3.4\tA\n").unwrap();
        assert_eq!(table.lookup("AMAZON.org"), Some("Amazon.org 94.5.6.7 A"));
        assert_eq!(table.lookup("amazon.ORG."), Some("Amazon.org 94.5.6.7 A"));
        assert_eq!(
            table.lookup("dotted.example"),
            Some("Dotted.example. 1.2.3.4 A")
        );
        assert_eq!(table.lookup("amazon.org.."), None);
        assert_eq!(table.lookup("amazon.or"), None);
        assert_eq!(table.lookup(""), None);
        assert_eq!(table.lookup(&"x".repeat(300)), None);
    }

    #[test]
    fn empty_table_finds_nothing() {
        let table = parse("# nothing\n\n").unwrap();
        assert!(table.is_empty());
        assert_eq!(table.lookup("a"), None);
    }

    fn error_of(text: &str) -> TableError {
        match parse(text) {
            Ok(table) => panic!("expected an error, loaded {table:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn errors_name_their_line() {
        assert_eq!(
            error_of("a.com\t1.2.3.4\tA\n\nb.com 1.2.3.4\n"),
            TableError {
                line: 3,
                kind: TableErrorKind::FieldCount(2)
            }
        );
        assert_eq!(
            error_of("a.com 1.2.3.4 A extra\n").kind,
            TableErrorKind::FieldCount(4)
        );
        assert_eq!(
            error_of("# c\nbad.com\t999.1.1.1\tA\n"),
            TableError {
                line: 2,
                kind: TableErrorKind::NotIpv4("999.1.1.1".into())
            }
        );
        assert_eq!(
            error_of(". 1.2.3.4 A\n").kind,
            TableErrorKind::EmptyHostname
        );
        assert_eq!(
            error_of(&format!("{} 1.2.3.4 A\n", "h".repeat(254))).kind,
            TableErrorKind::HostnameTooLong(254)
        );
        assert_eq!(
            error_of("a\0b 1.2.3.4 A\n").kind,
            TableErrorKind::ControlCharacter
        );
        assert_eq!(
            Table::parse(b"ok.com 1.1.1.1 A\n\xff 1.1.1.1 A\n").unwrap_err(),
            TableError {
                line: 2,
                kind: TableErrorKind::NotUtf8
            }
        );
        assert_eq!(
            error_of(&format!("a.com {} NS\n", "x".repeat(1100))).kind,
            TableErrorKind::RecordTooLong(1109)
        );
    }

    #[test]
    fn duplicates_are_case_and_dot_insensitive() {
        assert_eq!(
            error_of("# header\nA.com 1.1.1.1 A\nb.com 2.2.2.2 A\na.COM. 3.3.3.3 A\n"),
            TableError {
                line: 4,
                kind: TableErrorKind::Duplicate {
                    hostname: "a.COM".into(),
                    first_line: 2
                }
            }
        );
    }

    #[test]
    fn other_flags_keep_their_address_as_written() {
        let table = parse("zone.org anything NS\nv6.org ::1 AAAA\n").unwrap();
        assert_eq!(table.lookup("zone.org"), Some("zone.org anything NS"));
        assert_eq!(table.lookup("v6.org"), Some("v6.org ::1 AAAA"));
    }

    #[test]
    fn many_records_all_found() {
        let text: String = (0..5000)
            .map(|i| format!("host{i}.example\t10.0.{}.{}\tA\n", i / 256, i % 256))
            .collect();
        let table = parse(&text).unwrap();
        for i in 0..5000 {
            let expected = format!("host{i}.example 10.0.{}.{} A", i / 256, i % 256);
            assert_eq!(
                table.lookup(&format!("HOST{i}.example.")),
                Some(expected.as_str())
            );
        }
        assert_eq!(table.lookup("host5000.example"), None);
    }

    #[test]
    fn load_error_names_the_path() {
        let missing = Path::new("/nonexistent/authdns/table.tsv");
        let err = Table::load(missing).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/authdns/table.tsv"));
        let err = LoadError::Parse(
            PathBuf::from("data/t.tsv"),
            TableError {
                line: 7,
                kind: TableErrorKind::EmptyHostname,
            },
        );
        assert_eq!(err.to_string(), "data/t.tsv:7: empty hostname");
    }
}

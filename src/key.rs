//! Key files: a TLDS's secret, read from the first line of its file that is
//! neither blank nor a comment, and kept out of every log line and error.

use std::fmt;

use crate::digest::Signer;
use crate::text_file;

/// A secret key. Its `Debug` output is redacted so it cannot leak through a
/// log line or an error message by accident.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    pub fn new(secret: impl Into<String>) -> Key {
        Key(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn signer(&self) -> Signer {
        Signer::new(self.0.as_bytes())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// What is wrong with a key file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyTextError {
    /// Every line is blank or a comment.
    NoKey,
    /// The key's line (1-based) holds whitespace inside the key.
    Whitespace(usize),
    /// The key's line holds a control character.
    ControlCharacter(usize),
}

impl fmt::Display for KeyTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyTextError::NoKey => f.write_str("holds no key (every line is blank or a comment)"),
            KeyTextError::Whitespace(_) => f.write_str("the key contains whitespace"),
            KeyTextError::ControlCharacter(_) => {
                f.write_str("the key contains a control character")
            }
        }
    }
}

/// Why a key file gave no key. The key itself never appears in these.
#[derive(Debug)]
pub enum KeyFileError {
    Io(std::path::PathBuf, std::io::Error),
    NotUtf8(std::path::PathBuf),
    Text(std::path::PathBuf, KeyTextError),
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Io(path, _) => write!(f, "cannot read key file {}", path.display()),
            KeyFileError::NotUtf8(path) => {
                write!(f, "key file {} is not UTF-8 text", path.display())
            }
            KeyFileError::Text(path, err @ KeyTextError::NoKey) => {
                write!(f, "key file {} {err}", path.display())
            }
            KeyFileError::Text(
                path,
                err @ (KeyTextError::Whitespace(line) | KeyTextError::ControlCharacter(line)),
            ) => write!(f, "{}:{line}: {err}", path.display()),
        }
    }
}

/// An I/O error is the source, shown after the message by whoever prints
/// the chain; every other cause is in the message itself.
impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyFileError::Io(_, err) => Some(err),
            _ => None,
        }
    }
}

impl Key {
    /// A key file's key: its first line that is neither blank nor a `#`
    /// comment, trimmed. A key is one token: whitespace or a control
    /// character inside it is refused, since it would be a key no query
    /// file could spell.
    pub fn from_file_text(text: &str) -> Result<Key, KeyTextError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let (number, line) = text
            .lines()
            .enumerate()
            .find(|(_, line)| !text_file::is_skipped(line.as_bytes()))
            .ok_or(KeyTextError::NoKey)?;
        let key = line.trim_matches([' ', '\t', '\r']);
        if key.chars().any(char::is_whitespace) {
            return Err(KeyTextError::Whitespace(number + 1));
        }
        if key.chars().any(char::is_control) {
            return Err(KeyTextError::ControlCharacter(number + 1));
        }
        Ok(Key::new(key))
    }

    pub fn load(path: &std::path::Path) -> Result<Key, KeyFileError> {
        let bytes = std::fs::read(path).map_err(|err| KeyFileError::Io(path.to_owned(), err))?;
        let text = String::from_utf8(bytes).map_err(|_| KeyFileError::NotUtf8(path.to_owned()))?;
        Key::from_file_text(&text).map_err(|err| KeyFileError::Text(path.to_owned(), err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_takes_first_non_blank_line_trimmed() {
        let key = Key::from_file_text("\r\n  \n\t k5678 \r\nsecond\n").unwrap();
        assert_eq!(key.expose(), "k5678");
        assert_eq!(Key::from_file_text(" \n\r\n\t\n"), Err(KeyTextError::NoKey));
        assert_eq!(Key::from_file_text(""), Err(KeyTextError::NoKey));
        // A comment is not the key, and neither is a byte-order mark.
        let key = Key::from_file_text("\u{feff}# the key of tlds1\n\nk1234\n").unwrap();
        assert_eq!(key.expose(), "k1234");
        assert_eq!(
            Key::from_file_text("# only\n  # comments\n"),
            Err(KeyTextError::NoKey)
        );
        assert_eq!(
            Key::from_file_text("\nk 1234\n"),
            Err(KeyTextError::Whitespace(2))
        );
        assert_eq!(
            Key::from_file_text("k\u{7}1234"),
            Err(KeyTextError::ControlCharacter(1))
        );
    }

    #[test]
    fn key_debug_is_redacted() {
        let key = Key::new("hunter2");
        assert!(!format!("{key:?}").contains("hunter2"));
        assert!(!format!("{:?}", key.signer()).contains("hunter2"));
    }
}

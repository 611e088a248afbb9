//! The output file, replaced atomically: results go to a temporary file
//! beside it, renamed into place only when the run is complete, so a client
//! killed mid-run leaves the previous file whole.
//!
//! The temporary file is made by the `tempfile` crate: an unpredictable
//! name, created only if no such file exists (so nobody can plant a link
//! there), and removed if the run fails.

use std::fmt;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Why the output file cannot be written.
#[derive(Debug)]
pub enum OutputError {
    NoFileName,
    IsDirectory,
    NoDirectory(PathBuf),
    Create(PathBuf, io::Error),
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::NoFileName => f.write_str("the path names no file"),
            OutputError::IsDirectory => f.write_str("it is a directory"),
            OutputError::NoDirectory(dir) => {
                write!(f, "its directory {} does not exist", dir.display())
            }
            OutputError::Create(dir, _) => {
                write!(f, "cannot create a temporary file in {}", dir.display())
            }
        }
    }
}

impl std::error::Error for OutputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OutputError::Create(_, err) => Some(err),
            _ => None,
        }
    }
}

/// A file written under a temporary name and renamed into place on commit.
pub struct AtomicFile {
    path: PathBuf,
    file: BufWriter<NamedTempFile>,
}

impl AtomicFile {
    /// Checks `path` (its directory exists, it is not a directory) and
    /// creates the temporary file beside it, with the permissions of the
    /// file it will replace, or those of any new file.
    pub fn create(path: &Path) -> Result<AtomicFile, OutputError> {
        let name = path.file_name().ok_or(OutputError::NoFileName)?;
        if path.is_dir() {
            return Err(OutputError::IsDirectory);
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(OutputError::NoDirectory(dir.to_owned()));
        }
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(name);
        prefix.push(".");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        let permissions = fs::metadata(path)
            .map(|previous| previous.permissions())
            .ok()
            .or_else(new_file_permissions);
        if let Some(permissions) = permissions {
            builder.permissions(permissions);
        }
        let file = builder
            .tempfile_in(dir)
            .map_err(|err| OutputError::Create(dir.to_owned(), err))?;
        Ok(AtomicFile {
            path: path.to_owned(),
            // Results are short lines by the million: a write per 64 KiB
            // rather than per 8 KiB (the default).
            file: BufWriter::with_capacity(64 * 1024, file),
        })
    }

    /// Where the results are written until the commit.
    pub fn temp_path(&self) -> &Path {
        self.file.get_ref().path()
    }

    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(self) -> io::Result<()> {
        let file = self.file.into_inner().map_err(|err| err.into_error())?;
        file.as_file().sync_all()?;
        file.persist(&self.path)
            .map(|_| ())
            .map_err(|err| err.error)
    }
}

/// What an ordinary new file gets: read and write for all, less the umask
/// (a temporary file is otherwise readable by its owner alone).
#[cfg(unix)]
fn new_file_permissions() -> Option<fs::Permissions> {
    use std::os::unix::fs::PermissionsExt;
    Some(fs::Permissions::from_mode(0o666))
}

#[cfg(not(unix))]
fn new_file_permissions() -> Option<fs::Permissions> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("authdns-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn commits_in_place_and_leaves_nothing_on_failure() {
        let dir = scratch("commit");
        let path = dir.join("out.txt");
        fs::write(&path, "previous\n").unwrap();
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_line("new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "previous\n");
        file.commit().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new\n");

        let file = AtomicFile::create(&path).unwrap();
        let temp = file.temp_path().to_owned();
        assert!(temp.exists());
        drop(file);
        assert!(!temp.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn keeps_the_previous_files_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let path = dir.join("out.txt");
        fs::write(&path, "previous\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let file = AtomicFile::create(&path).unwrap();
        file.commit().unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn checks_the_path_first() {
        let dir = scratch("checks");
        assert!(matches!(
            AtomicFile::create(&dir),
            Err(OutputError::IsDirectory)
        ));
        assert!(matches!(
            AtomicFile::create(&dir.join("missing/out.txt")),
            Err(OutputError::NoDirectory(_))
        ));
    }
}

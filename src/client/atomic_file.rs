//! The output file, replaced atomically: results go to a temporary file
//! beside it, renamed into place only when the run is complete, so a client
//! killed mid-run leaves the previous file whole.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file written under a temporary name and renamed into place on commit.
pub struct AtomicFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<fs::File>>,
}

impl AtomicFile {
    /// Creates the temporary file beside `path`.
    pub fn create(path: &Path) -> io::Result<AtomicFile> {
        let file_name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(file_name);
        temp_name.push(format!(".tmp{}", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let file = fs::File::create(&temp).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("cannot create {}: {err}", temp.display()),
            )
        })?;
        Ok(AtomicFile {
            path: path.to_owned(),
            temp,
            file: Some(BufWriter::new(file)),
        })
    }

    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        match &mut self.file {
            Some(file) => {
                file.write_all(line.as_bytes())?;
                file.write_all(b"\n")
            }
            None => Err(io::Error::other("output already committed")),
        }
    }

    /// Where the results are written until the commit.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            let file = file.into_inner().map_err(|err| err.into_error())?;
            file.sync_all()?;
        }
        fs::rename(&self.temp, &self.path)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

//! The output file, replaced atomically: results go to a temporary file
//! beside it, renamed into place only when the run is complete, so a client
//! killed mid-run leaves the previous file whole.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A file written under a temporary name and renamed into place on commit.
pub struct AtomicFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<fs::File>>,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let file_name = path
            .file_name()
            .with_context(|| format!("--output {} names no file", path.display()))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(file_name);
        temp_name.push(format!(".tmp{}", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let file = fs::File::create(&temp)
            .with_context(|| format!("cannot create {} (for --output)", temp.display()))?;
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

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        if let Some(file) = self.file.take() {
            let file = file
                .into_inner()
                .map_err(|err| err.into_error())
                .with_context(|| format!("cannot write {}", self.temp.display()))?;
            file.sync_all()
                .with_context(|| format!("cannot write {}", self.temp.display()))?;
        }
        fs::rename(&self.temp, &self.path)
            .with_context(|| format!("cannot replace {}", self.path.display()))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

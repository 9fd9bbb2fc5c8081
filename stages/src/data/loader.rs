//! Shared by the source-data loaders: reading files with clear errors, mapping them into memory,
//! and the loader report.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;

use crate::api::error::StageError;
use crate::data::items::Items;
use crate::data::ratings::Ratings;
use crate::data::table::counters;

/// A read-only view of a whole file (memory-mapped; empty files are fine).
pub enum FileBytes {
    /// Mapped file.
    Mapped(memmap2::Mmap),
    /// Empty file (cannot be mapped).
    Empty,
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(m) => m,
            FileBytes::Empty => &[],
        }
    }
}

/// Maps `path` into memory, or a clear error naming it.
pub fn map(path: &Path) -> Result<FileBytes, StageError> {
    let f = File::open(path).map_err(|source| StageError::Io { path: path.to_path_buf(), source })?;
    let len = f.metadata().map_err(|source| StageError::Io { path: path.to_path_buf(), source })?.len();
    if len == 0 {
        return Ok(FileBytes::Empty);
    }
    // SAFETY: the file is opened read-only; a concurrent writer truncating it is outside what the
    // engine supports for source data (sources are hashed by content before and cached after).
    let m = unsafe { memmap2::Mmap::map(&f) }.map_err(|source| StageError::Io { path: path.to_path_buf(), source })?;
    Ok(FileBytes::Mapped(m))
}

/// The first line of `data` and the rest.
pub fn header(data: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'\n', data) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A required file inside `dir`, or an error listing what the directory holds.
pub fn require(dir: &Path, names: &[&str]) -> Result<Vec<PathBuf>, StageError> {
    if !dir.is_dir() {
        return Err(StageError::Data(format!("dataset directory `{}` does not exist", dir.display())));
    }
    let missing: Vec<&str> = names.iter().copied().filter(|n| !dir.join(n).is_file()).collect();
    if !missing.is_empty() {
        let mut present: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        present.sort();
        return Err(StageError::Data(format!(
            "`{}` lacks {}; it holds: {}",
            dir.display(),
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "),
            if present.is_empty() { "nothing".to_string() } else { present.join(", ") }
        )));
    }
    Ok(names.iter().map(|n| dir.join(n)).collect())
}

/// The loader report: counters describing what was read, dropped and repaired.
pub fn report(ratings: &Ratings, items: &Items, extra: &[(&str, i64)]) -> Result<RecordBatch, StageError> {
    let users: HashSet<u32> = ratings.user.iter().copied().collect();
    let rated: HashSet<u32> = ratings.item.iter().copied().collect();
    let known: HashSet<u32> = items.item.iter().copied().collect();
    let unknown = ratings.item.iter().filter(|i| !known.contains(i)).count();
    let mut rows = vec![
        ("ratings", ratings.len() as i64),
        ("users", users.len() as i64),
        ("items", items.item.len() as i64),
        ("rated_items", rated.len() as i64),
        ("ratings_of_unknown_items", unknown as i64),
    ];
    rows.extend_from_slice(extra);
    counters(&rows)
}

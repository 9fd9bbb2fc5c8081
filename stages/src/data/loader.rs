//! Shared by the source-data loaders: reading files with clear errors, headers by column name,
//! and the loader report.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;

use crate::api::error::StageError;
use crate::data::items::Items;
use crate::data::ratings::Ratings;
use crate::data::table::counters;
use crate::data::text::shown;

/// Reads the whole of `path`, or a clear error naming it. The bytes are copied, not mapped: a
/// source file truncated by another process while it is read would kill a mapped reader with
/// SIGBUS. A file whose size or modification time changes during the read is an error.
pub fn read(path: &Path) -> Result<Vec<u8>, StageError> {
    let io = |source| StageError::Io { path: path.to_path_buf(), source };
    let mut f = File::open(path).map_err(io)?;
    let before = f.metadata().map_err(io)?;
    if !before.is_file() {
        return Err(StageError::Data(format!("`{}` is not a regular file", path.display())));
    }
    let mut bytes = Vec::with_capacity(before.len() as usize);
    f.read_to_end(&mut bytes).map_err(io)?;
    let after = std::fs::metadata(path).map_err(io)?;
    if after.len() != before.len()
        || bytes.len() as u64 != before.len()
        || after.modified().ok() != before.modified().ok()
    {
        return Err(StageError::Data(format!(
            "`{}` changed while it was read ({} bytes before, {} read, {} after); run again once it is complete",
            path.display(),
            before.len(),
            bytes.len(),
            after.len()
        )));
    }
    Ok(bytes)
}

/// The positions of the `expected` columns in a CSV header, by name (any order, surrounding
/// whitespace and a UTF-8 BOM ignored). A header that lacks one, repeats one or has others is an
/// error naming what it found, so a reordered file is read right and a foreign one is rejected.
pub fn columns<const N: usize>(head: &[u8], expected: [&str; N]) -> Result<[usize; N], String> {
    let text = String::from_utf8_lossy(head);
    let text = text.trim_end_matches(['\r', '\n']).trim_start_matches('\u{feff}');
    let names: Vec<&str> = text.split(',').map(|c| c.trim().trim_matches('"')).collect();
    let want = || expected.join(",");
    let mut pos = [usize::MAX; N];
    for (i, name) in names.iter().enumerate() {
        match expected.iter().position(|e| e == name) {
            Some(k) if pos[k] == usize::MAX => pos[k] = i,
            Some(_) => {
                return Err(format!("the header `{}` names `{name}` twice (expected `{}`)", shown(head), want()))
            }
            None => {
                return Err(format!(
                    "the header `{}` has an unknown column `{name}` (expected `{}`)",
                    shown(head),
                    want()
                ))
            }
        }
    }
    if let Some(k) = pos.iter().position(|&p| p == usize::MAX) {
        return Err(format!("the header `{}` lacks the column `{}` (expected `{}`)", shown(head), expected[k], want()));
    }
    Ok(pos)
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
    match std::fs::metadata(dir) {
        Err(_) => return Err(StageError::Data(format!("dataset directory `{}` does not exist", dir.display()))),
        Ok(md) if !md.is_dir() => {
            return Err(StageError::Data(format!("dataset path `{}` is not a directory", dir.display())))
        }
        Ok(_) => {}
    }
    for n in names {
        let p = dir.join(n);
        if let Ok(md) = std::fs::metadata(&p) {
            if !md.is_file() {
                return Err(StageError::Data(format!("`{}` is not a regular file", p.display())));
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_in_any_order() {
        let want = ["userId", "movieId", "rating", "timestamp"];
        assert_eq!(columns(b"userId,movieId,rating,timestamp", want).unwrap(), [0, 1, 2, 3]);
        assert_eq!(columns("\u{feff}timestamp, rating,movieId,userId\r".as_bytes(), want).unwrap(), [3, 2, 1, 0]);
        assert!(columns(b"userId,movieId,rating", want).unwrap_err().contains("lacks the column `timestamp`"));
        assert!(columns(b"userId,movieId,rating,ts", want).unwrap_err().contains("unknown column `ts`"));
        assert!(columns(b"userId,userId,rating,timestamp", want).unwrap_err().contains("twice"));
    }

    #[test]
    fn require_says_what_is_wrong_with_the_path() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("file");
        std::fs::write(&f, "x").unwrap();
        let e = require(&f, &["a"]).unwrap_err().to_string();
        assert!(e.contains("is not a directory"), "{e}");
        let e = require(&d.path().join("nope"), &["a"]).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        std::os::unix::fs::symlink("/dev/null", d.path().join("a")).unwrap();
        let e = require(d.path(), &["a"]).unwrap_err().to_string();
        assert!(e.contains("is not a regular file"), "{e}");
    }
}

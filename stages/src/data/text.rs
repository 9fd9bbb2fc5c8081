//! Fast text parsing for source files: parallel line scanning with exact error lines, quoted CSV
//! fields, and number parsing without allocation.

use rayon::prelude::*;

/// A row that could not be parsed, with its 1-based line number.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// 1-based line number in the file.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// Splits `data` into about `parts` pieces that end at line boundaries.
fn chunk_bounds(data: &[u8], parts: usize) -> Vec<(usize, usize)> {
    let parts = parts.max(1);
    let step = data.len().div_ceil(parts).max(1);
    let mut bounds = Vec::with_capacity(parts);
    let mut start = 0;
    while start < data.len() {
        let mut end = (start + step).min(data.len());
        if end < data.len() {
            end = match memchr::memchr(b'\n', &data[end..]) {
                Some(i) => end + i + 1,
                None => data.len(),
            };
        }
        bounds.push((start, end));
        start = end;
    }
    bounds
}

/// Parses every line of `data` (which starts at line `first_line` of its file) in parallel.
///
/// `parse` returns `Ok(Some(row))`, `Ok(None)` to skip the line (counted in the second return
/// value), or `Err(message)`. Blank lines are skipped silently. Rows keep file order. The first
/// error in file order is reported with its exact line number.
pub fn parse_lines<T, F>(data: &[u8], first_line: usize, parse: F) -> Result<(Vec<T>, usize), RowError>
where
    T: Send + Copy + Default,
    F: Fn(&[u8]) -> Result<Option<T>, String> + Sync,
{
    let bounds = chunk_bounds(data, rayon::current_num_threads() * 8);
    let line_counts: Vec<usize> =
        bounds.par_iter().map(|&(s, e)| memchr::memchr_iter(b'\n', &data[s..e]).count() + 1).collect();
    let total: usize = line_counts.iter().sum();
    let mut rows = vec![T::default(); total];
    // Disjoint output slices, one per chunk.
    let mut slices = Vec::with_capacity(bounds.len());
    let mut rest = rows.as_mut_slice();
    for &n in &line_counts {
        let (a, b) = rest.split_at_mut(n);
        slices.push(a);
        rest = b;
    }
    let results: Vec<Result<(usize, usize), (usize, String)>> = bounds
        .par_iter()
        .zip(slices.into_par_iter())
        .map(|(&(s, e), out)| {
            let mut filled = 0;
            let mut skipped = 0;
            for (local, line) in data[s..e].split(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                match parse(line) {
                    Ok(Some(row)) => {
                        out[filled] = row;
                        filled += 1;
                    }
                    Ok(None) => skipped += 1,
                    Err(m) => return Err((local, m)),
                }
            }
            Ok((filled, skipped))
        })
        .collect();
    let mut write = 0;
    let mut skipped_total = 0;
    let mut offset = 0;
    for (ci, r) in results.into_iter().enumerate() {
        match r {
            Ok((filled, skipped)) => {
                rows.copy_within(offset..offset + filled, write);
                write += filled;
                skipped_total += skipped;
            }
            Err((local, message)) => {
                let before: usize = line_counts[..ci].iter().map(|c| c - 1).sum();
                return Err(RowError { line: first_line + before + local, message });
            }
        }
        offset += line_counts[ci];
    }
    rows.truncate(write);
    Ok((rows, skipped_total))
}

/// Splits a CSV line into fields, honouring double quotes (`""` inside quotes is a quote).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Splits a byte line on a single-byte separator into at most `N` fields; `None` when the count
/// is not exactly `N`.
pub fn split_exact<const N: usize>(line: &[u8], sep: u8) -> Option<[&[u8]; N]> {
    let mut out = [&line[..0]; N];
    let mut n = 0;
    for field in line.split(|&b| b == sep) {
        if n == N {
            return None;
        }
        out[n] = field;
        n += 1;
    }
    (n == N).then_some(out)
}

/// A field as an error message shows it: invisible and control characters escaped (a NUL byte
/// reads `\0`, a tab `\t`), invalid UTF-8 as U+FFFD.
pub fn shown(field: &[u8]) -> String {
    String::from_utf8_lossy(field).escape_debug().to_string()
}

/// Parses an unsigned id.
pub fn parse_u32(field: &[u8], what: &str) -> Result<u32, String> {
    let t = field.trim_ascii();
    if t.is_empty() || t.len() > 10 || !t.iter().all(u8::is_ascii_digit) {
        return Err(format!("bad {what} `{}`", shown(field)));
    }
    let v: u64 = t.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
    u32::try_from(v).map_err(|_| format!("{what} `{v}` out of range"))
}

/// Parses a signed integer.
pub fn parse_i64(field: &[u8], what: &str) -> Result<i64, String> {
    let t = field.trim_ascii();
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| format!("bad {what} `{}`", shown(field)))
}

/// Parses a float.
pub fn parse_f32(field: &[u8], what: &str) -> Result<f32, String> {
    let t = field.trim_ascii();
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse::<f32>().ok())
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("bad {what} `{}`", shown(field)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lines_reports_the_exact_line_of_the_first_error() {
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&format!("{i}\n"));
        }
        text.push_str("x\n1\n");
        let r = parse_lines::<u32, _>(text.as_bytes(), 2, |l| parse_u32(l, "id").map(Some));
        assert_eq!(r.unwrap_err().line, 10_002);
        let (rows, skipped) =
            parse_lines::<u32, _>(b"1\n2\n\n3\n4", 1, |l| parse_u32(l, "id").map(|v| (v != 2).then_some(v))).unwrap();
        assert_eq!(rows, vec![1, 3, 4]);
        assert_eq!(skipped, 1);
    }

    #[test]
    fn csv_fields_handle_quotes() {
        assert_eq!(csv_fields(r#"1,"Toy, Story ""2""",A|B"#), vec!["1", r#"Toy, Story "2""#, "A|B"]);
        assert_eq!(csv_fields("a,,b"), vec!["a", "", "b"]);
    }

    #[test]
    fn a_bad_field_is_shown_with_its_invisible_bytes_escaped() {
        assert_eq!(parse_f32(b"4.0\0", "rating").unwrap_err(), "bad rating `4.0\\0`");
        assert_eq!(parse_u32(b"1\t2", "user id").unwrap_err(), "bad user id `1\\t2`");
    }

    #[test]
    fn split_exact_checks_the_count() {
        assert!(split_exact::<3>(b"1,2,3", b',').is_some());
        assert!(split_exact::<3>(b"1,2", b',').is_none());
        assert!(split_exact::<3>(b"1,2,3,4", b',').is_none());
    }
}

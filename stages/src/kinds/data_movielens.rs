//! `data.movielens`: MovieLens loaders. `ratings.csv` + `movies.csv` (ml-latest, ml-latest-small,
//! ML-20M/25M/32M) or `ratings.dat` + `movies.dat` (ml-1m, ml-10m), detected from the files present.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Source;
use crate::api::stage::Stage;
use crate::data::items::Items;
use crate::data::loader::{columns, header, read, report, require};
use crate::data::ratings::Ratings;
use crate::data::text::{csv_fields, parse_f32, parse_i64, parse_lines, parse_u32, split_exact};

/// The MovieLens loader.
pub struct MovieLens;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    path: PathBuf,
}

const PARAMS: &[ParamDoc] = &[ParamDoc {
    name: "path",
    ty: "directory",
    default: None,
    help: "a MovieLens directory with ratings.csv+movies.csv or ratings.dat+movies.dat",
}];

#[derive(Clone, Copy, Default)]
struct Row {
    user: u32,
    item: u32,
    rating: f32,
    ts: i64,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Csv,
    Dat,
}

fn detect(dir: &Path) -> Result<(Format, PathBuf, PathBuf), StageError> {
    if dir.join("ratings.csv").is_file() || !dir.join("ratings.dat").is_file() {
        let f = require(dir, &["ratings.csv", "movies.csv"])?;
        Ok((Format::Csv, f[0].clone(), f[1].clone()))
    } else {
        let f = require(dir, &["ratings.dat", "movies.dat"])?;
        Ok((Format::Dat, f[0].clone(), f[1].clone()))
    }
}

/// `a::b::c` fields of a `.dat` line.
fn dat_fields(line: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(4);
    let mut start = 0;
    let mut i = 0;
    while i + 1 < line.len() {
        if line[i] == b':' && line[i + 1] == b':' {
            out.push(&line[start..i]);
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&line[start..]);
    out
}

fn parse_rating(field: &[u8]) -> Result<f32, String> {
    let r = parse_f32(field, "rating")?;
    if !(0.5..=5.0).contains(&r) {
        return Err(format!("rating `{r}` out of range 0.5–5"));
    }
    Ok(r)
}

/// Loads ratings from `path`.
fn load_ratings(path: &Path, format: Format) -> Result<Ratings, StageError> {
    let bytes = read(path)?;
    let malformed = |line: usize, message: String| StageError::Malformed { path: path.to_path_buf(), line, message };
    // Columns by name: a reordered header is read right, a foreign one rejected.
    let (body, first_line, pos) = match format {
        Format::Csv => {
            let (head, body) = header(&bytes);
            let pos = columns(head, ["userId", "movieId", "rating", "timestamp"]).map_err(|m| malformed(1, m))?;
            (body, 2, pos)
        }
        Format::Dat => (&bytes[..], 1, [0, 1, 2, 3]),
    };
    let (rows, _) = parse_lines::<Row, _>(body, first_line, |line| {
        let [u, i, r, t] = match format {
            Format::Csv => {
                let f = split_exact::<4>(line, b',').ok_or_else(|| {
                    format!("expected 4 comma-separated fields, found {}", line.split(|&b| b == b',').count())
                })?;
                pos.map(|p| f[p])
            }
            Format::Dat => {
                let f = dat_fields(line);
                if f.len() != 4 {
                    return Err(format!("expected 4 `::`-separated fields, found {}", f.len()));
                }
                [f[0], f[1], f[2], f[3]]
            }
        };
        Ok(Some(Row {
            user: parse_u32(u, "user id")?,
            item: parse_u32(i, "movie id")?,
            rating: parse_rating(r)?,
            ts: parse_i64(t, "timestamp")?,
        }))
    })
    .map_err(|e| malformed(e.line, e.message))?;
    if rows.is_empty() {
        return Err(StageError::Data(format!("`{}` holds no ratings", path.display())));
    }
    let mut out = Ratings {
        user: Vec::with_capacity(rows.len()),
        item: Vec::with_capacity(rows.len()),
        rating: Vec::with_capacity(rows.len()),
        ts: Vec::with_capacity(rows.len()),
    };
    for r in &rows {
        out.push(r.user, r.item, r.rating, r.ts);
    }
    Ok(out)
}

/// Loads movies; returns them and how many titles were not valid UTF-8.
fn load_movies(path: &Path, format: Format) -> Result<(Items, usize), StageError> {
    let bytes = read(path)?;
    let malformed = |line: usize, message: String| StageError::Malformed { path: path.to_path_buf(), line, message };
    let mut items = Items::default();
    let mut pos = [0, 1, 2];
    let mut lossy = 0;
    let mut seen = std::collections::HashSet::new();
    for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line_no = n + 1;
        let text = String::from_utf8_lossy(raw);
        if matches!(text, std::borrow::Cow::Owned(_)) {
            lossy += 1;
        }
        let fields: Vec<String> = match format {
            Format::Csv => {
                if n == 0 {
                    pos = columns(raw, ["movieId", "title", "genres"]).map_err(|m| malformed(1, m))?;
                    continue;
                }
                csv_fields(&text)
            }
            Format::Dat => text.split("::").map(str::to_string).collect(),
        };
        if fields.len() != 3 {
            return Err(malformed(
                line_no,
                format!("expected 3 fields (movieId, title, genres), found {}", fields.len()),
            ));
        }
        let fields: Vec<String> = pos.iter().map(|&p| fields[p].clone()).collect();
        let id = parse_u32(fields[0].as_bytes(), "movie id").map_err(|m| malformed(line_no, m))?;
        if !seen.insert(id) {
            return Err(malformed(line_no, format!("duplicate movie id `{id}`")));
        }
        let genres: Vec<String> = fields[2]
            .split('|')
            .map(str::trim)
            .filter(|g| !g.is_empty() && *g != "(no genres listed)")
            .map(str::to_string)
            .collect();
        items.item.push(id);
        items.title.push(fields[1].clone());
        items.categories.push(genres.clone());
        items.genres.push(genres);
    }
    if items.item.is_empty() {
        return Err(StageError::Data(format!("`{}` holds no movies", path.display())));
    }
    Ok((items, lossy))
}

impl Stage for MovieLens {
    fn kind(&self) -> &'static str {
        "data.movielens"
    }
    fn about(&self) -> &'static str {
        "load MovieLens ratings and movies; categories = genres"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc {
                name: "ratings",
                help: "user, item, rating, ts; sorted by user then time; duplicates resolved",
            },
            OutputDoc { name: "items", help: "item, title, categories (genres), genres" },
            OutputDoc { name: "report", help: "counters: ratings, users, items, duplicates, lossy titles…" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        params::parse::<P>(p, PARAMS).map(|_| ())
    }
    fn sources(&self, p: &Value) -> Result<Vec<Source>, StageError> {
        let p: P = params::parse(p, PARAMS)?;
        let (_, ratings, movies) = detect(&p.path)?;
        Ok(vec![Source::dir(p.path, vec![ratings, movies])])
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, _inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p: P = params::parse(p, PARAMS)?;
        let (format, ratings_path, movies_path) = detect(&p.path)?;
        ctx.progress(0.0, "reading movies");
        let (items, lossy) = load_movies(&movies_path, format)?;
        ctx.progress(0.1, "reading ratings");
        let raw = load_ratings(&ratings_path, format)?;
        let rows = raw.len();
        ctx.check_cancelled()?;
        ctx.progress(0.6, "sorting");
        let (ratings, dups) = raw.sort_dedupe();
        let report = report(
            &ratings,
            &items,
            &[("rows", rows as i64), ("duplicates", dups as i64), ("lossy_titles", lossy as i64)],
        )?;
        ctx.progress(0.8, "building tables");
        Ok(Outputs::from([
            ("items".to_string(), Artifact::Table(items.to_batch()?)),
            ("ratings".to_string(), Artifact::Table(ratings.into_batch()?)),
            ("report".to_string(), Artifact::Table(report)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dat_fields_split_on_double_colons() {
        assert_eq!(dat_fields(b"1::Toy Story: X (1995)::A|B").len(), 3);
        assert_eq!(dat_fields(b"1::1193::5::978300760"), vec![&b"1"[..], b"1193", b"5", b"978300760"]);
    }
}

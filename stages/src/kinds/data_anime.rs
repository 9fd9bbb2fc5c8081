//! `data.anime`: the Kaggle "Anime Recommendations Database" (`anime.csv` + `rating.csv`).
//! `-1` ratings (watched, not rated) are dropped and counted; the file has no timestamps, so file
//! order is time order (`ts` = line number); categories = `type`, genres kept as a second column.

use std::path::PathBuf;

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
use crate::data::text::{csv_fields, parse_i64, parse_lines, parse_u32, split_exact};

/// The Anime loader.
pub struct Anime;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    path: PathBuf,
}

const PARAMS: &[ParamDoc] =
    &[ParamDoc { name: "path", ty: "directory", default: None, help: "a directory with anime.csv and rating.csv" }];

#[derive(Clone, Copy, Default)]
struct Row {
    user: u32,
    item: u32,
    rating: f32,
}

impl Stage for Anime {
    fn kind(&self) -> &'static str {
        "data.anime"
    }
    fn about(&self) -> &'static str {
        "load the Kaggle anime ratings; categories = type (TV, Movie, OVA…)"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc { name: "ratings", help: "user, item, rating (1–10), ts (= line number)" },
            OutputDoc { name: "items", help: "item, title, categories ([type]), genres" },
            OutputDoc { name: "report", help: "counters: rows, unrated (-1) rows dropped, duplicates…" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        params::parse::<P>(p, PARAMS).map(|_| ())
    }
    fn sources(&self, p: &Value) -> Result<Vec<Source>, StageError> {
        let p: P = params::parse(p, PARAMS)?;
        let files = require(&p.path, &["anime.csv", "rating.csv"])?;
        Ok(vec![Source::dir(p.path, files)])
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, _inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p: P = params::parse(p, PARAMS)?;
        let files = require(&p.path, &["anime.csv", "rating.csv"])?;
        let (anime_path, rating_path) = (&files[0], &files[1]);
        ctx.progress(0.0, "reading anime.csv");
        let bytes = read(anime_path)?;
        let malformed =
            |path: &PathBuf, line: usize, message: String| StageError::Malformed { path: path.clone(), line, message };
        let mut items = Items::default();
        let mut lossy = 0i64;
        let mut seen = std::collections::HashSet::new();
        let mut pos = [0, 1, 2, 3];
        for (n, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let text = String::from_utf8_lossy(raw);
            if n == 0 {
                let all = columns(raw, ["anime_id", "name", "genre", "type", "episodes", "rating", "members"])
                    .map_err(|m| malformed(anime_path, 1, m))?;
                pos = [all[0], all[1], all[2], all[3]];
                continue;
            }
            if matches!(text, std::borrow::Cow::Owned(_)) {
                lossy += 1;
            }
            let all = csv_fields(&text);
            if all.len() != 7 {
                return Err(malformed(anime_path, n + 1, format!("expected 7 fields, found {}", all.len())));
            }
            let f: Vec<&String> = pos.iter().map(|&p| &all[p]).collect();
            let id = parse_u32(f[0].as_bytes(), "anime id").map_err(|m| malformed(anime_path, n + 1, m))?;
            if !seen.insert(id) {
                return Err(malformed(anime_path, n + 1, format!("duplicate anime id `{id}`")));
            }
            items.item.push(id);
            items.title.push(f[1].clone());
            items.genres.push(f[2].split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect());
            let ty = f[3].trim();
            items.categories.push(if ty.is_empty() { vec![] } else { vec![ty.to_string()] });
        }
        ctx.progress(0.1, "reading rating.csv");
        if items.item.is_empty() {
            return Err(StageError::Data(format!("`{}` holds no anime", anime_path.display())));
        }
        let bytes = read(rating_path)?;
        let (head, body) = header(&bytes);
        let pos = columns(head, ["user_id", "anime_id", "rating"]).map_err(|m| malformed(rating_path, 1, m))?;
        // No timestamps: the row's position among the kept rows is its time.
        let (rows, _) = parse_lines::<Row, _>(body, 2, |line| {
            let f = split_exact::<3>(line, b',').ok_or_else(|| {
                format!("expected 3 comma-separated fields, found {}", line.split(|&b| b == b',').count())
            })?;
            let [u, i, r] = pos.map(|p| f[p]);
            let rating = parse_i64(r, "rating")?;
            if rating == -1 {
                // Kept for now so the file's users are counted; dropped below.
                return Ok(Some(Row { user: parse_u32(u, "user id")?, item: parse_u32(i, "anime id")?, rating: -1.0 }));
            }
            if !(0..=10).contains(&rating) {
                return Err(format!("rating `{rating}` out of range (-1 or 0–10)"));
            }
            Ok(Some(Row { user: parse_u32(u, "user id")?, item: parse_u32(i, "anime id")?, rating: rating as f32 }))
        })
        .map_err(|e| malformed(rating_path, e.line, e.message))?;
        if rows.is_empty() {
            return Err(StageError::Data(format!("`{}` holds no ratings", rating_path.display())));
        }
        let users_in_file = rows.iter().map(|r| r.user).collect::<std::collections::HashSet<_>>().len();
        let mut raw = Ratings::default();
        let mut unrated = 0usize;
        for (k, r) in rows.iter().enumerate() {
            if r.rating < 0.0 {
                unrated += 1;
            } else {
                raw.push(r.user, r.item, r.rating, k as i64);
            }
        }
        ctx.check_cancelled()?;
        let n_rows = raw.len() as i64 + unrated as i64;
        let (ratings, dups) = raw.sort_dedupe();
        let report = report(
            &ratings,
            &items,
            &[
                ("rows", n_rows),
                ("users_in_file", users_in_file as i64),
                ("unrated_dropped", unrated as i64),
                ("duplicates", dups as i64),
                ("lossy_titles", lossy),
            ],
        )?;
        Ok(Outputs::from([
            ("items".to_string(), Artifact::Table(items.to_batch()?)),
            ("ratings".to_string(), Artifact::Table(ratings.into_batch()?)),
            ("report".to_string(), Artifact::Table(report)),
        ]))
    }
}

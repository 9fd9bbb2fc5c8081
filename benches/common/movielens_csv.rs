//! Writes synthetic worlds as a MovieLens directory (`ratings.csv` in ML-25M's order and format,
//! `movies.csv` with titles and genres), shared by the data and paper-scale benches.

use std::io::Write;
use std::path::Path;

use s2r_stages::data::synth::World;

/// Writes `worlds` into `dir` as one dataset: world `k`'s user and item ids are offset past those
/// of the worlds before it. Returns (rows, bytes of ratings.csv).
pub fn write(dir: &Path, worlds: &[World]) -> (usize, u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut f = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(dir.join("ratings.csv")).unwrap());
    f.write_all(b"userId,movieId,rating,timestamp\n").unwrap();
    let mut m = std::io::BufWriter::new(std::fs::File::create(dir.join("movies.csv")).unwrap());
    writeln!(m, "movieId,title,genres").unwrap();
    let (mut user0, mut item0, mut rows) = (0u64, 0u64, 0usize);
    for w in worlds {
        // ML-25M's order: by user, then movie id.
        let r = &w.ratings;
        let mut order: Vec<u32> = (0..r.len() as u32).collect();
        order.sort_unstable_by_key(|&k| (r.user[k as usize], r.item[k as usize]));
        let mut line = Vec::with_capacity(64);
        for k in order {
            let k = k as usize;
            line.clear();
            let half = (r.rating[k] * 2.0) as u32;
            writeln!(
                line,
                "{},{},{}.{},{}",
                user0 + r.user[k] as u64,
                item0 + r.item[k] as u64,
                half / 2,
                if half % 2 == 1 { 5 } else { 0 },
                1_100_000_000 + r.ts[k] * 37
            )
            .unwrap();
            f.write_all(&line).unwrap();
        }
        rows += r.len();
        for (i, id) in w.items.item.iter().enumerate() {
            let id = item0 + *id as u64;
            writeln!(m, "{id},\"{} ({})\",{}", w.items.title[i], 1950 + i % 70, w.items.categories[i].join("|"))
                .unwrap();
        }
        user0 += r.user.iter().copied().max().map_or(0, |u| u as u64 + 1);
        item0 += w.items.item.iter().copied().max().map_or(0, |i| i as u64 + 1);
    }
    f.flush().unwrap();
    m.flush().unwrap();
    (rows, std::fs::metadata(dir.join("ratings.csv")).unwrap().len())
}

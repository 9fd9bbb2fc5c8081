//! Data stages on real and generated data: exact counts, split invariants, bad input, the
//! synthetic world's gap knob.

mod util;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use s2r_pipe::store::encode;
use s2r_stages::data::items::Items;
use s2r_stages::data::ratings::Ratings;
use s2r_stages::data::split::SplitResult;
use s2r_stages::data::synth::{generate, World};
use s2r_stages::data::table::counter;
use s2r_stages::kinds::data_split::config as split_config;
use s2r_stages::kinds::data_synth::config as synth_config;
use s2r_stages::registry::Registry;
use s2r_stages::{Artifact, Context, Inputs, Outputs, StageError};
use serde_json::json;

fn run_kind(kind: &str, params: serde_json::Value, inputs: &Inputs) -> Result<Outputs, StageError> {
    let reg = Registry::builtin();
    let dir = tempfile::tempdir().unwrap();
    let stage = &reg.get(kind).unwrap().stage;
    stage.validate(&params)?;
    stage.run(&Context::for_tests(dir.path()), inputs, &params)
}

fn table(o: &Outputs, name: &str) -> arrow::record_batch::RecordBatch {
    match &o[name] {
        Artifact::Table(t) => t.clone(),
        _ => panic!("{name} is not a table"),
    }
}

fn ml_small() -> PathBuf {
    util::repo_root().join("data/ml-latest-small")
}

fn load(kind: &str, path: &Path) -> Result<(Ratings, Items, arrow::record_batch::RecordBatch), StageError> {
    let o = run_kind(kind, json!({"path": path}), &Inputs::default())?;
    Ok((
        Ratings::from_batch(&table(&o, "ratings"), "r")?,
        Items::from_batch(&table(&o, "items"), "i")?,
        table(&o, "report"),
    ))
}

#[test]
fn ml_latest_small_has_the_documented_counts() {
    let (r, items, report) = load("data.movielens", &ml_small()).unwrap();
    assert_eq!(r.len(), 100_836);
    assert_eq!(r.user.iter().collect::<HashSet<_>>().len(), 610);
    assert_eq!(items.item.len(), 9_742);
    assert_eq!(r.item.iter().collect::<HashSet<_>>().len(), 9_724);
    assert_eq!(counter(&report, "report", "duplicates").unwrap(), Some(0));
    // Sorted by user, then time.
    assert!((1..r.len()).all(|i| (r.user[i - 1], r.ts[i - 1]) <= (r.user[i], r.ts[i])));
    let toy = items.item.iter().position(|&i| i == 1).unwrap();
    assert_eq!(items.title[toy], "Toy Story (1995)");
    assert_eq!(items.categories[toy], ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]);
}

/// The anime sample lives in the shared data folder next to the checkout (not redistributed here:
/// it ships without a licence). `S2R_ANIME_SAMPLE` points elsewhere.
fn anime_sample() -> Option<PathBuf> {
    let p = std::env::var_os("S2R_ANIME_SAMPLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::repo_root().join("../shared/data/anime-sample"));
    p.join("rating.csv").is_file().then_some(p)
}

#[test]
fn anime_sample_has_the_documented_counts() {
    let Some(dir) = anime_sample() else {
        eprintln!("anime sample not found; set S2R_ANIME_SAMPLE to run this check");
        return;
    };
    let (r, items, report) = load("data.anime", &dir).unwrap();
    assert_eq!(r.len(), 78_151);
    assert_eq!(counter(&report, "report", "rows").unwrap(), Some(97_470));
    assert_eq!(counter(&report, "report", "unrated_dropped").unwrap(), Some(19_319));
    assert_eq!(counter(&report, "report", "users_in_file").unwrap(), Some(956));
    // Some users have only `-1` rows: they have no explicit rating left.
    assert_eq!(r.user.iter().collect::<HashSet<_>>().len(), 902);
    assert_eq!(items.item.len(), 12_294);
    let blank = items.categories.iter().filter(|c| c.is_empty()).count();
    assert_eq!(blank, 25);
}

fn write(dir: &Path, name: &str, text: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn anime_loader_drops_unrated_rows_and_keeps_file_order_as_time() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "anime.csv",
        b"anime_id,name,genre,type,episodes,rating,members\n1,A,\"Action, Drama\",TV,12,8.1,100\n2,\"B, the movie\",Drama,Movie,1,7.0,50\n3,C,,,1,,1\n",
    );
    write(d.path(), "rating.csv", b"user_id,anime_id,rating\n5,2,9\n5,1,-1\n4,1,7\n5,1,3\n");
    let (r, items, report) = load("data.anime", d.path()).unwrap();
    assert_eq!(r.user, [4, 5, 5]);
    assert_eq!(r.item, [1, 2, 1]);
    assert_eq!(r.rating, [7.0, 9.0, 3.0]);
    assert!(r.ts[1] < r.ts[2], "file order is time order");
    assert_eq!(counter(&report, "report", "unrated_dropped").unwrap(), Some(1));
    assert_eq!(items.categories, [vec!["TV".to_string()], vec!["Movie".to_string()], vec![]]);
    assert_eq!(items.genres[0], ["Action", "Drama"]);
    assert_eq!(items.title[1], "B, the movie");
}

#[track_caller]
fn bad_movielens(ratings: &[u8], movies: &[u8], needle: &str) {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "ratings.csv", ratings);
    write(d.path(), "movies.csv", movies);
    let e = load("data.movielens", d.path()).expect_err("must fail").to_string();
    assert!(e.contains(needle), "expected `{needle}` in `{e}`");
}

#[test]
fn malformed_input_is_reported_with_file_and_line() {
    let movies = b"movieId,title,genres\n1,A,Crime\n2,B,Adventure\n";
    let head = "userId,movieId,rating,timestamp\n";
    let r = |rows: &str| format!("{head}1,1,4.0,10\n{rows}").into_bytes();
    bad_movielens(&r("1,2,4.0\n"), movies, "ratings.csv:3: expected 4 comma-separated fields, found 3");
    bad_movielens(&r("1,2,x,5\n"), movies, "ratings.csv:3: bad rating `x`");
    bad_movielens(&r("1,2,7.5,5\n"), movies, "ratings.csv:3: rating `7.5` out of range");
    bad_movielens(&r("u1,2,4,5\n"), movies, "ratings.csv:3: bad user id `u1`");
    bad_movielens(&r("1,-2,4,5\n"), movies, "ratings.csv:3: bad movie id `-2`");
    bad_movielens(b"user,movie\n", movies, "ratings.csv:1: the header `user,movie` has an unknown column `user`");
    bad_movielens(b"userId,movieId,rating\n1,1,4\n", movies, "lacks the column `timestamp`");
    bad_movielens(&r("1,2,4.0\0,5\n"), movies, "ratings.csv:3: bad rating `4.0\\0`");
    bad_movielens(&r(""), b"", "movies.csv` holds no movies");
    bad_movielens(&r(""), b"movieId,title,genres\n", "movies.csv` holds no movies");
    bad_movielens(head.as_bytes(), movies, "ratings.csv` holds no ratings");
    bad_movielens(&r(""), b"movieId,title,genres\n1,A\n", "movies.csv:2: expected 3 fields");
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "movies.csv", movies);
    let e = load("data.movielens", d.path()).err().unwrap().to_string();
    assert!(e.contains("lacks `ratings.csv`") && e.contains("movies.csv"), "{e}");
    let e = load("data.movielens", Path::new("/definitely/not/here")).err().unwrap().to_string();
    assert!(e.contains("does not exist"), "{e}");
    let e = load("data.movielens", &d.path().join("movies.csv")).err().unwrap().to_string();
    assert!(e.contains("is not a directory"), "{e}");
}

#[test]
fn a_reordered_header_is_read_by_column_name() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "movies.csv", b"genres,movieId,title\nCrime,1,A\nAdventure|Crime,2,\"B, the\"\n");
    write(d.path(), "ratings.csv", b"timestamp,rating,userId,movieId\n100,4.5,7,2\n50,3.0,7,1\n");
    let (r, items, report) = load("data.movielens", d.path()).unwrap();
    assert_eq!(
        (r.user.clone(), r.item.clone(), r.rating.clone(), r.ts.clone()),
        (vec![7, 7], vec![1, 2], vec![3.0, 4.5], vec![50, 100])
    );
    assert_eq!(counter(&report, "report", "duplicates").unwrap(), Some(0));
    assert_eq!(items.item, [1, 2]);
    assert_eq!(items.title[1], "B, the");
    assert_eq!(items.categories[1], ["Adventure", "Crime"]);
    let a = tempfile::tempdir().unwrap();
    write(a.path(), "anime.csv", b"name,anime_id,type,genre,episodes,rating,members\nA,1,TV,Drama,12,8.1,100\n");
    write(a.path(), "rating.csv", b"anime_id,user_id,rating\n1,5,9\n");
    let (r, items, _) = load("data.anime", a.path()).unwrap();
    assert_eq!((r.user[0], r.item[0], r.rating[0]), (5, 1, 9.0));
    assert_eq!(
        (items.title[0].as_str(), items.categories[0][0].as_str(), items.genres[0][0].as_str()),
        ("A", "TV", "Drama")
    );
    write(a.path(), "anime.csv", b"anime_id,name,genre,type,episodes,rating,members\n");
    let e = load("data.anime", a.path()).err().unwrap().to_string();
    assert!(e.contains("holds no anime"), "{e}");
}

#[test]
fn a_ratings_file_that_changes_while_it_is_read_is_an_error_not_a_crash() {
    // The loader copies files (a truncation under a memory map is SIGBUS); a size change between
    // opening and the end of the read is reported.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "movies.csv", b"movieId,title,genres\n1,A,Crime\n");
    let mut big = b"userId,movieId,rating,timestamp\n".to_vec();
    for u in 0..400_000 {
        big.extend_from_slice(format!("{u},1,4.0,{u}\n").as_bytes());
    }
    write(d.path(), "ratings.csv", &big);
    let path = d.path().join("ratings.csv");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let p2 = path.clone();
    let truncator = std::thread::spawn(move || {
        let mut flips = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let f = std::fs::OpenOptions::new().write(true).open(&p2).unwrap();
            f.set_len(if flips % 2 == 0 { 1000 } else { big.len() as u64 }).unwrap();
            flips += 1;
        }
    });
    let mut outcomes = (0, 0);
    for _ in 0..30 {
        match load("data.movielens", d.path()) {
            Ok(_) => outcomes.0 += 1,
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("changed while it was read") || e.contains("ratings.csv:"),
                    "a clear error naming the file: {e}"
                );
                outcomes.1 += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    truncator.join().unwrap();
    assert_eq!(outcomes.0 + outcomes.1, 30, "the process survived every read");
}

#[test]
fn dat_files_duplicates_and_non_utf8_titles() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "movies.dat", b"1::Caf\xe9 (1995)::Crime|Drama\n2::B::Adventure\n");
    write(d.path(), "ratings.dat", b"1::1::5::100\n1::2::3::50\n1::1::2::200\n2::2::4::10\n");
    let (r, items, report) = load("data.movielens", d.path()).unwrap();
    assert_eq!(r.len(), 3, "the duplicate (1, 1) keeps the latest rating");
    let k = (0..r.len()).find(|&k| r.user[k] == 1 && r.item[k] == 1).unwrap();
    assert_eq!(r.rating[k], 2.0);
    assert_eq!(counter(&report, "report", "duplicates").unwrap(), Some(1));
    assert_eq!(counter(&report, "report", "lossy_titles").unwrap(), Some(1));
    assert!(items.title[0].starts_with("Caf"));
}

/// `data.split`'s params checked as the stage checks them, then the library split.
fn split(r: &Ratings, items: &Items, params: &serde_json::Value) -> Result<SplitResult, StageError> {
    s2r_stages::data::split::split(r, items, &split_config(params)?)
}

fn ml_split(params: serde_json::Value) -> Result<SplitResult, StageError> {
    let (r, items, _) = load("data.movielens", &ml_small()).unwrap();
    split(&r, &items, &params)
}

#[test]
fn split_invariants_hold_on_ml_latest_small() {
    let (r, items, _) = load("data.movielens", &ml_small()).unwrap();
    let params = json!({"sim": "Adventure", "real": "Crime", "seed": 7});
    let s = split(&r, &items, &params).unwrap();
    let sim: HashSet<u32> = s.sim_items.iter().copied().collect();
    let real: HashSet<u32> = s.real_items.iter().copied().collect();
    assert!(sim.is_disjoint(&real), "no item in both domains");
    let cats = |i: u32| &items.categories[items.item.iter().position(|&x| x == i).unwrap()];
    assert!(s.sim_items.iter().all(|&i| cats(i).contains(&"Adventure".into()) && !cats(i).contains(&"Crime".into())));
    assert!(s.sim.item.iter().all(|i| sim.contains(i)));
    for part in [&s.real_train, &s.val, &s.test] {
        assert!(part.item.iter().all(|i| real.contains(i)));
    }
    let role = |want: &str| s.users.iter().filter(|u| u.1 == want).map(|u| u.0).collect::<HashSet<u32>>();
    let (test, val, shared) = (role("test"), role("val"), role("shared"));
    assert!(test.is_disjoint(&val) && test.is_disjoint(&shared) && val.is_disjoint(&shared));
    // No test or validation user's real ratings anywhere in training.
    assert!(s.real_train.user.iter().all(|u| shared.contains(u)));
    assert!(s.sim.item.iter().all(|i| !real.contains(i)));
    assert!(s.test.user.iter().all(|u| test.contains(u)) && s.val.user.iter().all(|u| val.contains(u)));
    // Sizes match the fractions.
    let n = test.len() + val.len() + shared.len() + counter_of(&s.info, "real_users_unused") as usize;
    assert_eq!(n as i64, counter_of(&s.info, "real_users"));
    assert_eq!(test.len(), (n as f64 * 0.9).round() as usize);
    assert_eq!(val.len(), (((n - test.len()) as f64) * 0.2).round() as usize);
    assert_eq!(shared.len(), (n - test.len() - val.len()).min(200));
    // Every user with ≥ 5 Crime ratings is a real user.
    let mut per_user = std::collections::HashMap::<u32, usize>::new();
    for k in 0..r.len() {
        if real.contains(&r.item[k]) {
            *per_user.entry(r.user[k]).or_default() += 1;
        }
    }
    assert_eq!(per_user.values().filter(|&&c| c >= 5).count(), n);
    // The same seed gives byte-identical Parquet; another seed another split.
    let again = split(&r, &items, &params).unwrap();
    let bytes = |x: &Ratings| encode("t", &Artifact::Table(x.to_batch().unwrap())).unwrap().0;
    assert_eq!(bytes(&s.test), bytes(&again.test));
    assert_eq!(bytes(&s.real_train), bytes(&again.real_train));
    let other = split(&r, &items, &json!({"sim": "Adventure", "real": "Crime", "seed": 8})).unwrap();
    assert_ne!(bytes(&s.test), bytes(&other.test));
}

fn counter_of(info: &[(&str, i64)], key: &str) -> i64 {
    info.iter().find(|x| x.0 == key).map(|x| x.1).unwrap()
}

#[test]
fn split_errors_name_the_parameter() {
    let e = ml_split(json!({"sim": "Adventur", "real": "Crime"})).unwrap_err().to_string();
    assert!(e.contains("unknown category `Adventur` (param `sim`)") && e.contains("Drama (4361)"), "{e}");
    let e = ml_split(json!({"sim": "Adventure", "real": "Crime", "min_item_ratings": 100000})).unwrap_err().to_string();
    assert!(e.contains("empty") && e.contains("min_item_ratings"), "{e}");
    let e = ml_split(json!({"sim": "Adventure", "real": "Crime", "min_user_ratings": 100000})).unwrap_err().to_string();
    assert!(e.contains("no shared users"), "{e}");
    let e = ml_split(json!({"sim": "Adventure", "real": "Crime", "test_frac": 1.5})).unwrap_err().to_string();
    assert!(e.contains("`test_frac` must be in [0, 1)"), "{e}");
    // `pair` (for a matrix over dataset pairs) is `sim` and `real` in one value.
    let a = ml_split(json!({"pair": "Adventure_Crime", "seed": 7})).unwrap();
    let b = ml_split(json!({"sim": "Adventure", "real": "Crime", "seed": 7})).unwrap();
    assert_eq!(a, b);
    let e = ml_split(json!({"pair": "Adventure-Crime"})).unwrap_err().to_string();
    assert!(e.contains("`pair` must be `Sim_Real`"), "{e}");
    let e = ml_split(json!({"pair": "Adventure_Crime", "sim": "Drama"})).unwrap_err().to_string();
    assert!(e.contains("not both"), "{e}");
    let e = ml_split(json!({"seed": 1})).unwrap_err().to_string();
    assert!(e.contains("are required"), "{e}");
}

fn world(gap: f64) -> World {
    let p = synth_config(&json!({"users": 400, "gap": gap, "seed": 3})).unwrap();
    generate(&p)
}

fn std_of(xs: &[f32]) -> f64 {
    let n = xs.len() as f64;
    let m = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    (xs.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / n).sqrt()
}

#[test]
fn the_synthetic_world_has_the_stated_shape_and_gap_direction() {
    let w0 = world(0.0);
    let p = &w0.params;
    assert_eq!(w0.items.item.len(), p.sim_items + p.real_items);
    assert_eq!(w0.ratings.user.iter().collect::<HashSet<_>>().len(), 400);
    let is_real = |i: u32| i as usize > p.sim_items;
    assert!(w0.items.categories.iter().all(|c| c.len() == 1), "disjoint categories");
    let mean_per_user = w0.ratings.len() as f64 / 400.0;
    assert!((mean_per_user - p.ratings_per_user).abs() < 0.15 * p.ratings_per_user, "{mean_per_user}");
    assert!(w0.ratings.rating.iter().all(|&y| (1.0..=5.0).contains(&y) && y.fract() == 0.0));
    let w1 = world(1.0);
    let part = |w: &World, real: bool| -> Vec<f32> {
        (0..w.ratings.len()).filter(|&k| is_real(w.ratings.item[k]) == real).map(|k| w.ratings.rating[k]).collect()
    };
    // Sim ratings do not depend on the gap; real ratings spread out (polarisation) as it grows.
    assert_eq!(part(&w0, false), part(&w1, false));
    assert!(
        std_of(&part(&w1, true)) > std_of(&part(&w0, true)) + 0.1,
        "{} vs {}",
        std_of(&part(&w1, true)),
        std_of(&part(&w0, true))
    );
    // Drift: late-session real ratings fall relative to early ones when the gap is on.
    let early_late = |w: &World| {
        let (mut early, mut late) = (vec![], vec![]);
        let mut count = std::collections::HashMap::<u32, usize>::new();
        for k in 0..w.ratings.len() {
            if is_real(w.ratings.item[k]) {
                let t = count.entry(w.ratings.user[k]).or_default();
                if *t < 8 {
                    early.push(w.ratings.rating[k]);
                } else if *t >= 24 {
                    late.push(w.ratings.rating[k]);
                }
                *t += 1;
            }
        }
        let m = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        m(&early) - m(&late)
    };
    assert!(early_late(&w1) > early_late(&w0) + 0.2, "{} vs {}", early_late(&w1), early_late(&w0));
    // Deterministic under a seed.
    assert_eq!(world(1.0).ratings, w1.ratings);
}

#[test]
fn group_mode_split_shares_one_pool_between_user_groups() {
    let o = run_kind("data.movielens", json!({"path": ml_small()}), &Inputs::default()).unwrap();
    let items = Items::from_batch(&table(&o, "items"), "i").unwrap();
    // Users by id mod 3: group 1 = sim, group 0 = real, group 2 = unused.
    let users: Vec<u32> = (1..=610).collect();
    let groups = s2r_stages::data::table::batch(vec![
        ("user", std::sync::Arc::new(arrow::array::UInt32Array::from(users.clone()))),
        (
            "group",
            std::sync::Arc::new(arrow::array::UInt32Array::from(users.iter().map(|u| u % 3).collect::<Vec<_>>())),
        ),
    ])
    .unwrap();
    let mut inputs = Inputs::default();
    inputs.push("ratings", "ratings", o["ratings"].clone());
    inputs.push("items", "ratings", o["items"].clone());
    inputs.push("groups", "g", Artifact::Table(groups));
    let params = json!({"pool": "Thriller", "sim_group": 1, "real_group": 0, "test_frac": 0.5, "seed": 3});
    let out = run_kind("data.split", params, &inputs).unwrap();
    let r = |n: &str| Ratings::from_batch(&table(&out, n), n).unwrap();
    let thriller: HashSet<u32> = items
        .item
        .iter()
        .zip(&items.categories)
        .filter(|(_, c)| c.contains(&"Thriller".to_string()))
        .map(|(i, _)| *i)
        .collect();
    let sim = r("sim");
    assert!(!sim.is_empty() && sim.user.iter().all(|u| u % 3 == 1), "sim = group 1's ratings");
    for part in ["real_train", "val", "test"] {
        let x = r(part);
        assert!(!x.is_empty() && x.user.iter().all(|u| u % 3 == 0), "{part} = group 0's ratings");
        assert!(x.item.iter().all(|i| thriller.contains(i)));
    }
    assert!(sim.item.iter().all(|i| thriller.contains(i)));
    assert_eq!(table(&out, "sim_items").column(0), table(&out, "real_items").column(0), "one pool");
    // Group mode without the groups input, or mixing modes, is an error.
    let mut no_groups = Inputs::default();
    no_groups.push("ratings", "ratings", o["ratings"].clone());
    no_groups.push("items", "ratings", o["items"].clone());
    let e = run_kind("data.split", json!({"pool": "Thriller", "sim_group": 1}), &no_groups).unwrap_err().to_string();
    assert!(e.contains("needs the `groups` input"), "{e}");
    let e = run_kind("data.split", json!({"sim": "Drama", "sim_group": 1}), &no_groups).unwrap_err().to_string();
    assert!(e.contains("group mode"), "{e}");
    // `only_group`: a category split of one group's users (RQ3).
    let params = json!({"sim": "Thriller", "real": "Action", "only_group": 2, "test_frac": 0.5, "seed": 3});
    let out = run_kind("data.split", params.clone(), &inputs).unwrap();
    for part in ["sim", "real_train", "val", "test"] {
        let x = r2(&out, part);
        assert!(!x.is_empty() && x.user.iter().all(|u| u % 3 == 2), "{part} = group 2's ratings");
    }
    let e = run_kind("data.split", params, &no_groups).unwrap_err().to_string();
    assert!(e.contains("`only_group` needs the `groups` input"), "{e}");
}

fn r2(out: &Outputs, n: &str) -> Ratings {
    Ratings::from_batch(&table(out, n), n).unwrap()
}

#[test]
fn a_shared_pool_world_has_two_user_kinds_and_an_oracle_trajectory() {
    let gen = |gap: f64| {
        generate(
            &synth_config(&json!({"users": 200, "sim_items": 50, "shared_pool": true, "gap": gap, "seed": 4})).unwrap(),
        )
    };
    let w = gen(1.5);
    assert_eq!(w.items.item.len(), 50, "one pool");
    assert!(w.ratings.item.iter().all(|&i| i <= 50));
    let real: HashSet<u32> = w.groups.iter().filter(|g| g.1 == 0).map(|g| g.0).collect();
    assert_eq!(real.len(), 100);
    assert_eq!((w.oracle.user.clone(), w.oracle.item.clone()), (w.ratings.user.clone(), w.ratings.item.clone()));
    // Real-dynamics users' oracle ratings are their ratings; sim users' differ under a gap.
    let (mut same_real, mut diff_sim) = (true, 0);
    for k in 0..w.ratings.len() {
        if real.contains(&w.ratings.user[k]) {
            same_real &= w.ratings.rating[k] == w.oracle.rating[k];
        } else if w.ratings.rating[k] != w.oracle.rating[k] {
            diff_sim += 1;
        }
    }
    assert!(same_real && diff_sim > w.ratings.len() / 10, "{diff_sim}");
    // Without a gap the oracle trajectory is the data.
    let w0 = gen(0.0);
    assert_eq!(w0.ratings.rating, w0.oracle.rating);
}

#[test]
fn table1_takes_sim_and_real_from_a_pair() {
    let o = run_kind("data.movielens", json!({"path": ml_small()}), &Inputs::default()).unwrap();
    let mut inputs = Inputs::default();
    inputs.push("ratings", "ratings", o["ratings"].clone());
    inputs.push("items", "ratings", o["items"].clone());
    let split = run_kind("data.split", json!({"pair": "Adventure_Crime", "seed": 7}), &inputs).unwrap();
    let mut si = Inputs::default();
    for name in ["sim", "real_train", "val", "test", "sim_items", "real_items", "users", "info"] {
        si.push(name, "split", split[name].clone());
    }
    let t = table(&run_kind("data.stats", json!({"dataset": "ml", "pair": "Adventure_Crime"}), &si).unwrap(), "table1");
    let text = s2r_pipe::show::render(&t, s2r_pipe::show::Format::Markdown, None).unwrap();
    assert!(text.contains("| ml | Adventure | Crime | 564 | 38 | 10 | 435 |"), "{text}");
    let e = run_kind("data.stats", json!({"pair": "Adventure"}), &si).err().unwrap().to_string();
    assert!(e.contains("`pair` must be `Sim_Real`"), "{e}");
    let e = run_kind("data.stats", json!({"pair": "A_B", "sim": "A"}), &si).err().unwrap().to_string();
    assert!(e.contains("not both"), "{e}");
}

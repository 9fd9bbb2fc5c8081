//! Representation and static-baseline stages on ml-latest-small, through the CLI.

mod util;

use util::{with_status, Test};

fn pipeline(data: &std::path::Path) -> String {
    format!(
        r#"
stages:
  ratings: {{kind: data.movielens, params: {{path: "{}"}}}}
  split:
    kind: data.split
    inputs: {{ratings: ratings.ratings, items: ratings.items}}
    params: {{sim: Adventure, real: Crime, seed: 7}}
  svd:
    kind: embed.svd
    inputs: {{split: split.*}}
    params: {{dim: 32, seed: 1}}
  eval:
    kind: eval.static
    matrix: {{method: [mf, random, popular]}}
    inputs: {{test: split.test, real_items: split.real_items, user_vecs: svd.sim_user_vecs, item_vecs: svd.real_item_vecs}}
    params: {{method: "${{method}}", seed: 3}}
"#,
        data.display()
    )
}

fn summary(t: &Test, id: &str) -> serde_json::Value {
    let out = t.run(&["cat", "p.yaml", &format!("{id}.summary"), "--format", "json"]).success().stdout;
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

#[test]
fn mf_and_popular_beat_random_on_ml_latest_small() {
    let t = Test::new();
    t.pipeline(&pipeline(&util::repo_root().join("data/ml-latest-small")));
    let (d, r) = t.run_report(&["-q"]);
    d.success();
    assert_eq!(with_status(&r, "ran").len(), 6);
    let random = summary(&t, "eval[method=random]");
    let mf = summary(&t, "eval[method=mf]");
    let popular = summary(&t, "eval[method=popular]");
    let reward = |v: &serde_json::Value| v["reward"].as_f64().unwrap();
    assert_eq!(random["users"], 435);
    // Random over ~490 Crime movies finds few rated ones; the learned/popularity rankings find many.
    assert!(reward(&mf) > 2.0 * reward(&random), "mf {mf} vs random {random}");
    assert!(reward(&popular) > 2.0 * reward(&random), "popular {popular} vs random {random}");
    for v in [&random, &mf, &popular] {
        for k in ["precision", "recall", "f1"] {
            let x = v[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{k} = {x}");
        }
    }
    // Vectors: one per sim user and per real pool item, D = 32.
    let path = t.run(&["path", "p.yaml", "svd.sim_user_vecs"]).success().stdout;
    assert!(path.trim().ends_with(".parquet"));
    let sv = t.run(&["cat", "p.yaml", "svd.singular_values", "--format", "csv"]).success().stdout;
    let sim_sv: Vec<f64> = sv
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("sim,"))
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(sim_sv.len(), 32);
    assert!(sim_sv.windows(2).all(|w| w[0] >= w[1]), "descending");
}

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

#[test]
fn kmeans_groups_on_ml_latest_small() {
    let t = Test::new();
    let data = util::repo_root().join("data/ml-latest-small");
    t.pipeline(&format!(
        r#"
stages:
  ratings: {{kind: data.movielens, params: {{path: "{}"}}}}
  clusters: {{kind: study.kmeans, inputs: {{ratings: ratings.ratings}}, params: {{k: 10, seed: 1}}}}
  groups: {{kind: study.groups_rq2, inputs: {{clusters: clusters.*}}, params: {{groups: 4, group_size: 40}}}}
"#,
        data.display()
    ));
    let (d, _) = t.run_report(&["-q"]);
    d.success();
    let info = t.run(&["cat", "p.yaml", "clusters.info", "--format", "csv"]).success().stdout;
    // Every ml-latest-small user has ≥ 20 ratings; those with < 32 are left out and counted.
    let get =
        |k: &str| info.lines().find(|l| l.starts_with(k)).unwrap().split(',').nth(1).unwrap().parse::<f64>().unwrap();
    assert_eq!(get("users_clustered") + get("users_left_out"), 610.0);
    let groups = t.run(&["cat", "p.yaml", "groups.groups", "--format", "csv"]).success().stdout;
    let mut per_group = std::collections::BTreeMap::new();
    for l in groups.lines().skip(1) {
        *per_group.entry(l.split(',').nth(1).unwrap().to_string()).or_insert(0) += 1;
    }
    assert_eq!(per_group.keys().cloned().collect::<Vec<_>>(), ["0", "1", "2", "3", "4"]);
    assert!(per_group.values().all(|&n| n <= 40));
}

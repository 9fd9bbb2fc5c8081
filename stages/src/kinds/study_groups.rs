//! `study.groups_rq2` and `study.groups_rq3`: the gap studies' user groups (docs/design.md §6).
//!
//! RQ2 (one item pool): the largest k-means cluster is the real group (0); the other clusters,
//! ordered by the distance of their centroid to the real centroid (nearest first), are sim groups
//! 1..=`groups`. At most `group_size` users per group (a seeded sample when a cluster is larger).
//!
//! RQ3 (two categories): each user has a cluster in each category's clustering; a user's gap is
//! the distance between those two centroids. Users sorted by descending gap; the first
//! `groups` × `group_size` go, in order, into groups 1..=`groups` (group 1 = the largest gaps).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Float64Array, UInt32Array};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::table::{batch, column, read_vectors};

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    #[serde(default = "d_groups")]
    groups: usize,
    #[serde(default = "d_size")]
    group_size: usize,
    #[serde(default)]
    seed: u64,
}
fn d_groups() -> usize {
    4
}
fn d_size() -> usize {
    1000
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "groups", ty: "integer ≥ 1", default: Some("4"), help: "sim groups (RQ2) or gap groups (RQ3)" },
    ParamDoc { name: "group_size", ty: "integer ≥ 1", default: Some("1000"), help: "users per group, at most" },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "sampling seed (RQ2) and tie order" },
];

fn parse(p: &Value) -> Result<P, StageError> {
    let p: P = params::parse(p, PARAMS)?;
    if p.groups == 0 || p.group_size == 0 {
        return Err(params::invalid("`groups` and `group_size` must be ≥ 1", PARAMS));
    }
    Ok(p)
}

/// A clustering read back: user → cluster, row-major centroids, dimension.
type Clustering = (HashMap<u32, u32>, Vec<f32>, usize);

fn clusters(inputs: &Inputs, a: &str, c: &str) -> Result<Clustering, StageError> {
    let t = inputs.table(a)?;
    let users = column::<UInt32Array>(t, a, "user")?.values();
    let cl = column::<UInt32Array>(t, a, "cluster")?.values();
    let map = users.iter().copied().zip(cl.iter().copied()).collect();
    let (_, cent, d) = read_vectors(inputs.table(c)?, c)?;
    Ok((map, cent, d))
}

fn dist(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt()
}

fn groups_table(rows: Vec<(u32, u32, f64)>) -> Result<arrow::record_batch::RecordBatch, StageError> {
    batch(vec![
        ("user", Arc::new(UInt32Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()))),
        ("group", Arc::new(UInt32Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()))),
        ("gap", Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()))),
    ])
}

/// RQ2's groups.
pub struct GroupsRq2;

impl Stage for GroupsRq2 {
    fn kind(&self) -> &'static str {
        "study.groups_rq2"
    }
    fn about(&self) -> &'static str {
        "RQ2 groups: the largest cluster is real (0), the next clusters by centroid distance are sim groups 1..G"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc { name: "assignments", required: true, many: false, help: "study.kmeans assignments" },
            InputDoc { name: "centroids", required: true, many: false, help: "study.kmeans centroids" },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[OutputDoc {
            name: "groups",
            help: "user, group (0 = real, 1..G = sim, nearest first), gap (centroid distance to the real one)",
        }]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        parse(p).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, _ctx: &Context, inputs: &Inputs, pv: &Value) -> Result<Outputs, StageError> {
        let p = parse(pv)?;
        let (assign, cent, d) = clusters(inputs, "assignments", "centroids")?;
        let k = cent.len() / d.max(1);
        if k < p.groups + 1 {
            return Err(StageError::Data(format!("{k} clusters cannot give a real group and {} sim groups", p.groups)));
        }
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); k];
        let mut users: Vec<(u32, u32)> = assign.into_iter().collect();
        users.sort_unstable();
        for (u, c) in users {
            members[c as usize].push(u);
        }
        // Largest cluster (ties: lowest index) is real.
        let real = (0..k).max_by(|&a, &b| members[a].len().cmp(&members[b].len()).then(b.cmp(&a))).expect("k ≥ 1");
        let rc = &cent[real * d..(real + 1) * d];
        let mut others: Vec<(f64, usize)> =
            (0..k).filter(|&c| c != real).map(|c| (dist(&cent[c * d..(c + 1) * d], rc), c)).collect();
        others.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed);
        let mut rows = Vec::new();
        let mut take = |c: usize, g: u32, gap: f64, rows: &mut Vec<(u32, u32, f64)>| {
            let mut m = members[c].clone();
            if m.len() > p.group_size {
                m.shuffle(&mut rng);
                m.truncate(p.group_size);
                m.sort_unstable();
            }
            rows.extend(m.into_iter().map(|u| (u, g, gap)));
        };
        take(real, 0, 0.0, &mut rows);
        for (g, &(gap, c)) in others.iter().take(p.groups).enumerate() {
            take(c, g as u32 + 1, gap, &mut rows);
        }
        Ok(Outputs::from([("groups".into(), Artifact::Table(groups_table(rows)?))]))
    }
}

/// RQ3's groups.
pub struct GroupsRq3;

impl Stage for GroupsRq3 {
    fn kind(&self) -> &'static str {
        "study.groups_rq3"
    }
    fn about(&self) -> &'static str {
        "RQ3 groups: users by descending distance between their sim and real clusters' centroids"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc { name: "sim_assignments", required: true, many: false, help: "study.kmeans of the sim category" },
            InputDoc { name: "sim_centroids", required: true, many: false, help: "its centroids" },
            InputDoc {
                name: "real_assignments",
                required: true,
                many: false,
                help: "study.kmeans of the real category",
            },
            InputDoc { name: "real_centroids", required: true, many: false, help: "its centroids" },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[OutputDoc { name: "groups", help: "user, group (1 = largest gaps … G), gap" }]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        parse(p).map(|_| ())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, _ctx: &Context, inputs: &Inputs, pv: &Value) -> Result<Outputs, StageError> {
        let p = parse(pv)?;
        let (sa, sc, d) = clusters(inputs, "sim_assignments", "sim_centroids")?;
        let (ra, rc, d2) = clusters(inputs, "real_assignments", "real_centroids")?;
        if d != d2 {
            return Err(StageError::Input(format!("sim trajectories have {d} features, real ones {d2}")));
        }
        let mut gaps: Vec<(f64, u32)> = sa
            .iter()
            .filter_map(|(u, &cs)| {
                ra.get(u).map(|&cr| {
                    (dist(&sc[cs as usize * d..(cs as usize + 1) * d], &rc[cr as usize * d..(cr as usize + 1) * d]), *u)
                })
            })
            .collect();
        gaps.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
        let need = p.groups * p.group_size;
        if gaps.len() < p.groups {
            return Err(StageError::Data(format!(
                "only {} users appear in both clusterings; {} groups need more",
                gaps.len(),
                p.groups
            )));
        }
        let n = need.min(gaps.len());
        let per = n / p.groups;
        let rows: Vec<(u32, u32, f64)> =
            gaps.into_iter().take(per * p.groups).enumerate().map(|(i, (g, u))| (u, (i / per) as u32 + 1, g)).collect();
        Ok(Outputs::from([("groups".into(), Artifact::Table(groups_table(rows)?))]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::table::vectors;

    fn inputs(prefix: &str, assign: &[(u32, u32)], cent: &[f32], d: usize, into: &mut Inputs) {
        let a = batch(vec![
            ("user", Arc::new(UInt32Array::from(assign.iter().map(|x| x.0).collect::<Vec<_>>()))),
            ("cluster", Arc::new(UInt32Array::from(assign.iter().map(|x| x.1).collect::<Vec<_>>()))),
        ])
        .unwrap();
        into.push(format!("{prefix}assignments"), "k", Artifact::Table(a));
        let k = cent.len() / d;
        into.push(
            format!("{prefix}centroids"),
            "k",
            Artifact::Table(vectors((0..k as u32).collect(), cent.to_vec(), d).unwrap()),
        );
    }

    fn rows(o: &Outputs) -> Vec<(u32, u32)> {
        let Artifact::Table(t) = &o["groups"] else { panic!() };
        let u = column::<UInt32Array>(t, "g", "user").unwrap().values().to_vec();
        let g = column::<UInt32Array>(t, "g", "group").unwrap().values().to_vec();
        u.into_iter().zip(g).collect()
    }

    #[test]
    fn rq2_real_is_the_largest_cluster_and_sim_groups_go_by_distance() {
        // Clusters: 0 (2 users, far), 1 (4 users: real), 2 (1 user, near), 3 (2 users, middle).
        let assign = [(1, 0), (2, 0), (3, 1), (4, 1), (5, 1), (6, 1), (7, 2), (8, 3), (9, 3)];
        let cent = [10.0, 0.0, 1.0, 3.0];
        let mut i = Inputs::default();
        inputs("", &assign, &cent, 1, &mut i);
        let dir = tempfile::tempdir().unwrap();
        let o = GroupsRq2
            .run(&Context::for_tests(dir.path()), &i, &serde_json::json!({"groups": 3, "group_size": 3}))
            .unwrap();
        let r = rows(&o);
        let group_of = |u: u32| r.iter().find(|x| x.0 == u).map(|x| x.1);
        assert_eq!(r.iter().filter(|x| x.1 == 0).count(), 3, "capped at group_size");
        assert_eq!((group_of(7), group_of(8), group_of(1)), (Some(1), Some(2), Some(3)));
        let e = GroupsRq2.run(&Context::for_tests(dir.path()), &i, &serde_json::json!({"groups": 4})).unwrap_err();
        assert!(e.to_string().contains("4 clusters cannot give a real group and 4 sim groups"));
    }

    #[test]
    fn rq3_groups_users_by_descending_gap() {
        let mut i = Inputs::default();
        inputs("sim_", &[(1, 0), (2, 0), (3, 1), (4, 1)], &[0.0, 5.0], 1, &mut i);
        inputs("real_", &[(1, 0), (2, 1), (3, 0), (4, 1), (5, 0)], &[0.0, 9.0], 1, &mut i);
        let dir = tempfile::tempdir().unwrap();
        let o = GroupsRq3
            .run(&Context::for_tests(dir.path()), &i, &serde_json::json!({"groups": 2, "group_size": 2}))
            .unwrap();
        // Gaps: u1 0, u2 9, u3 5, u4 4 → group 1 = {2, 3}, group 2 = {4, 1}.
        assert_eq!(rows(&o), [(2, 1), (3, 1), (4, 2), (1, 2)]);
    }
}

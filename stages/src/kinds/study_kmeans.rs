//! `study.kmeans`: k-means over users' rating trajectories (the gap studies' features): each
//! user's first `features` ratings in time order; users with fewer are left out and counted.

use std::sync::Arc;

use arrow::array::{Float64Array, StringArray, UInt32Array};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::artifact::{Artifact, Inputs, Outputs};
use crate::api::context::Context;
use crate::api::docs::{InputDoc, OutputDoc, ParamDoc};
use crate::api::error::StageError;
use crate::api::params;
use crate::api::stage::Stage;
use crate::data::ratings::Ratings;
use crate::data::table::{batch, vectors};
use crate::numerics::kmeans::{kmeans, Options};

/// The k-means stage.
pub struct StudyKmeans;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    #[serde(default = "d_k")]
    k: usize,
    #[serde(default = "d_k")]
    n_init: usize,
    #[serde(default = "d_iter")]
    max_iter: usize,
    #[serde(default = "d_tol")]
    tol: f64,
    #[serde(default = "d_feat")]
    features: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    category: Option<String>,
}
fn d_k() -> usize {
    10
}
fn d_iter() -> usize {
    300
}
fn d_tol() -> f64 {
    1e-4
}
fn d_feat() -> usize {
    32
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "k", ty: "integer ≥ 1", default: Some("10"), help: "clusters" },
    ParamDoc { name: "n_init", ty: "integer ≥ 1", default: Some("10"), help: "k-means++ restarts" },
    ParamDoc { name: "max_iter", ty: "integer", default: Some("300"), help: "Lloyd iterations per restart" },
    ParamDoc { name: "tol", ty: "number ≥ 0", default: Some("0.0001"), help: "relative centroid shift to stop" },
    ParamDoc {
        name: "features",
        ty: "integer ≥ 1",
        default: Some("32"),
        help: "first ratings per user, in time order",
    },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed" },
    ParamDoc {
        name: "category",
        ty: "string",
        default: Some("every item"),
        help: "only ratings of this category's items (needs the `items` input)",
    },
];

fn check(p: &P) -> Result<(), StageError> {
    if p.k == 0 || p.n_init == 0 || p.features == 0 || p.tol < 0.0 {
        return Err(params::invalid("`k`, `n_init`, `features` must be ≥ 1 and `tol` ≥ 0", PARAMS));
    }
    Ok(())
}

/// Each user's first `t` ratings in time order: (users, row-major features, users left out).
pub fn trajectories(r: &Ratings, t: usize) -> (Vec<u32>, Vec<f64>, usize) {
    let mut order: Vec<usize> = (0..r.len()).collect();
    order.sort_by_key(|&k| (r.user[k], r.ts[k], k));
    let (mut users, mut x, mut left_out) = (Vec::new(), Vec::new(), 0);
    let mut s = 0;
    while s < order.len() {
        let u = r.user[order[s]];
        let mut e = s;
        while e < order.len() && r.user[order[e]] == u {
            e += 1;
        }
        if e - s >= t {
            users.push(u);
            x.extend(order[s..s + t].iter().map(|&k| f64::from(r.rating[k])));
        } else {
            left_out += 1;
        }
        s = e;
    }
    (users, x, left_out)
}

impl Stage for StudyKmeans {
    fn kind(&self) -> &'static str {
        "study.kmeans"
    }
    fn about(&self) -> &'static str {
        "k-means (k-means++, restarts) of users by their first ratings in time order"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc {
                name: "ratings",
                required: true,
                many: false,
                help: "a ratings table (a loader's, or a split part)",
            },
            InputDoc { name: "items", required: false, many: false, help: "a loader's items (for `category`)" },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc { name: "assignments", help: "user, cluster, distance (to its centroid)" },
            OutputDoc { name: "centroids", help: "id (cluster), vector; plus size" },
            OutputDoc {
                name: "info",
                help: "key, value: inertia, users clustered, users left out, iterations, restart",
            },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        check(&params::parse(p, PARAMS)?)
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, pv: &Value) -> Result<Outputs, StageError> {
        let p: P = params::parse(pv, PARAMS)?;
        check(&p)?;
        let mut r = Ratings::from_batch(inputs.table("ratings")?, "ratings")?;
        if let Some(c) = &p.category {
            if !inputs.has("items") {
                return Err(StageError::Input(format!("`category: {c}` needs the `items` input")));
            }
            let items = crate::data::items::Items::from_batch(inputs.table("items")?, "items")?;
            let keep = items.ids_in(c);
            if keep.is_empty() {
                return Err(StageError::Data(format!("no item has category `{c}`")));
            }
            r = r.filter(|k| keep.contains(&r.item[k]));
        }
        let (users, x, left_out) = trajectories(&r, p.features);
        ctx.progress(0.1, &format!("{} users, {left_out} left out", users.len()));
        let km = kmeans(
            &x,
            p.features,
            Options { k: p.k, n_init: p.n_init, max_iter: p.max_iter, tol: p.tol, seed: p.seed },
        )
        .map_err(|e| {
            StageError::Data(format!(
                "k-means: {e} ({} users have ≥ {} ratings; {left_out} have fewer)",
                users.len(),
                p.features
            ))
        })?;
        let d = p.features;
        let dist: Vec<f64> = (0..users.len())
            .map(|i| {
                let c = km.assignments[i] as usize;
                x[i * d..(i + 1) * d]
                    .iter()
                    .zip(&km.centroids[c * d..(c + 1) * d])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        let mut sizes = vec![0u32; p.k];
        for &a in &km.assignments {
            sizes[a as usize] += 1;
        }
        let assignments = batch(vec![
            ("user", Arc::new(UInt32Array::from(users.clone()))),
            ("cluster", Arc::new(UInt32Array::from(km.assignments.clone()))),
            ("distance", Arc::new(Float64Array::from(dist))),
        ])?;
        let cent = vectors((0..p.k as u32).collect(), km.centroids.iter().map(|&v| v as f32).collect(), d)?;
        let centroids = batch(vec![
            ("id", cent.column(0).clone()),
            ("vector", cent.column(1).clone()),
            ("size", Arc::new(UInt32Array::from(sizes))),
        ])?;
        let info = [
            ("inertia", km.inertia),
            ("users_clustered", users.len() as f64),
            ("users_left_out", left_out as f64),
            ("iterations", km.iterations as f64),
            ("restart", km.restart as f64),
        ];
        let info = batch(vec![
            ("key", Arc::new(StringArray::from(info.iter().map(|i| i.0).collect::<Vec<_>>()))),
            ("value", Arc::new(Float64Array::from(info.iter().map(|i| i.1).collect::<Vec<_>>()))),
        ])?;
        Ok(Outputs::from([
            ("assignments".into(), Artifact::Table(assignments)),
            ("centroids".into(), Artifact::Table(centroids)),
            ("info".into(), Artifact::Table(info)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trajectories_take_the_first_ratings_in_time_order() {
        let mut r = Ratings::default();
        for (u, i, y, ts) in
            [(1, 1, 5.0, 30), (1, 2, 1.0, 10), (1, 3, 3.0, 20), (2, 1, 4.0, 1), (3, 1, 2.0, 5), (3, 2, 2.5, 6)]
        {
            r.push(u, i, y, ts);
        }
        let (users, x, left) = trajectories(&r, 2);
        assert_eq!(users, [1, 3]);
        assert_eq!(x, [1.0, 3.0, 2.0, 2.5]);
        assert_eq!(left, 1);
    }
}

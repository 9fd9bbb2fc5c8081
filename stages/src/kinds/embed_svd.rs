//! `embed.svd`: MF representations by randomized truncated SVD of each domain's training matrix
//! (sim: D_sim over all its users; real: D_real, the shared users only — test and validation users'
//! real ratings never enter). User vectors UΣ^½, item vectors VΣ^½.
//!
//! D = `dim`, or min(rows, cols) of a domain when smaller; the two domains' vectors are padded
//! with zeros to one common width so ⟨u^S, v^R⟩ (the MF baseline) is defined. Items of a pool that
//! have no training rating get zero vectors.

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
use crate::data::table::{batch, column, vectors};
use crate::numerics::factorize::factorize;

/// The SVD stage.
pub struct EmbedSvd;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct P {
    #[serde(default = "d_dim")]
    dim: usize,
    #[serde(default = "d_over")]
    oversample: usize,
    #[serde(default = "d_power")]
    power_iters: usize,
    #[serde(default)]
    seed: u64,
}
fn d_dim() -> usize {
    128
}
fn d_over() -> usize {
    10
}
fn d_power() -> usize {
    3
}

const PARAMS: &[ParamDoc] = &[
    ParamDoc { name: "dim", ty: "integer ≥ 1", default: Some("128"), help: "D (capped at min(rows, cols))" },
    ParamDoc { name: "oversample", ty: "integer", default: Some("10"), help: "extra random directions" },
    ParamDoc { name: "power_iters", ty: "integer", default: Some("3"), help: "power iterations" },
    ParamDoc { name: "seed", ty: "integer", default: Some("0"), help: "seed of the random projection" },
];

fn padded(flat: &[f64], k: usize, width: usize) -> Vec<f32> {
    let rows = flat.len().checked_div(k).unwrap_or(0);
    let mut out = vec![0f32; rows * width];
    for r in 0..rows {
        for c in 0..k {
            out[r * width + c] = flat[r * k + c] as f32;
        }
    }
    out
}

fn pool(inputs: &Inputs, name: &str) -> Result<Vec<u32>, StageError> {
    let mut v = column::<UInt32Array>(inputs.table(name)?, name, "item")?.values().to_vec();
    v.sort_unstable();
    Ok(v)
}

impl Stage for EmbedSvd {
    fn kind(&self) -> &'static str {
        "embed.svd"
    }
    fn about(&self) -> &'static str {
        "MF vectors by randomized truncated SVD of each domain's training matrix"
    }
    fn source(&self) -> &'static str {
        file!()
    }
    fn params(&self) -> &'static [ParamDoc] {
        PARAMS
    }
    fn inputs(&self) -> &'static [InputDoc] {
        &[
            InputDoc { name: "sim", required: true, many: false, help: "split.sim (D_sim)" },
            InputDoc { name: "real_train", required: true, many: false, help: "split.real_train (D_real)" },
            InputDoc { name: "sim_items", required: true, many: false, help: "split.sim_items" },
            InputDoc { name: "real_items", required: true, many: false, help: "split.real_items" },
        ]
    }
    fn outputs(&self) -> &'static [OutputDoc] {
        &[
            OutputDoc {
                name: "sim_user_vecs",
                help: "id, vector: UΣ^½ of the sim matrix (every user with sim ratings)",
            },
            OutputDoc { name: "sim_item_vecs", help: "id, vector: VΣ^½ of the sim matrix (the sim pool)" },
            OutputDoc { name: "real_user_vecs", help: "id, vector: UΣ^½ of D_real (shared users)" },
            OutputDoc { name: "real_item_vecs", help: "id, vector: VΣ^½ of D_real (the real pool)" },
            OutputDoc { name: "singular_values", help: "domain, k, value" },
        ]
    }
    fn validate(&self, p: &Value) -> Result<(), StageError> {
        let p: P = params::parse(p, PARAMS)?;
        if p.dim == 0 {
            return Err(params::invalid("`dim` must be ≥ 1", PARAMS));
        }
        Ok(())
    }
    fn normalize(&self, p: &Value) -> Result<Value, StageError> {
        params::normalized::<P>(p, PARAMS)
    }
    fn run(&self, ctx: &Context, inputs: &Inputs, p: &Value) -> Result<Outputs, StageError> {
        let p: P = params::parse(p, PARAMS)?;
        let sim = Ratings::from_batch(inputs.table("sim")?, "sim")?;
        let real = Ratings::from_batch(inputs.table("real_train")?, "real_train")?;
        let (sim_pool, real_pool) = (pool(inputs, "sim_items")?, pool(inputs, "real_items")?);
        if sim.is_empty() || real.is_empty() {
            return Err(StageError::Data("embed.svd needs non-empty sim and real training ratings".into()));
        }
        ctx.progress(0.0, "sim SVD");
        let fs = factorize(&sim, &sim_pool, p.dim, p.oversample, p.power_iters, p.seed);
        ctx.check_cancelled()?;
        ctx.progress(0.5, "real SVD");
        let fr = factorize(&real, &real_pool, p.dim, p.oversample, p.power_iters, p.seed.wrapping_add(1));
        let width = fs.k.max(fr.k);
        let mut dom = Vec::new();
        let mut idx = Vec::new();
        let mut val = Vec::new();
        for (name, f) in [("sim", &fs), ("real", &fr)] {
            for (i, s) in f.singular.iter().enumerate() {
                dom.push(name);
                idx.push(i as u32);
                val.push(*s);
            }
        }
        let singular = batch(vec![
            ("domain", Arc::new(StringArray::from(dom))),
            ("k", Arc::new(UInt32Array::from(idx))),
            ("value", Arc::new(Float64Array::from(val))),
        ])?;
        Ok(Outputs::from([
            (
                "sim_user_vecs".into(),
                Artifact::Table(vectors(fs.users.clone(), padded(&fs.user_vecs, fs.k, width), width)?),
            ),
            (
                "sim_item_vecs".into(),
                Artifact::Table(vectors(fs.items.clone(), padded(&fs.item_vecs, fs.k, width), width)?),
            ),
            (
                "real_user_vecs".into(),
                Artifact::Table(vectors(fr.users.clone(), padded(&fr.user_vecs, fr.k, width), width)?),
            ),
            (
                "real_item_vecs".into(),
                Artifact::Table(vectors(fr.items.clone(), padded(&fr.item_vecs, fr.k, width), width)?),
            ),
            ("singular_values".into(), Artifact::Table(singular)),
        ]))
    }
}

//! The tables a world stage writes (`world.synth`, `world.fit`): the world itself, its items and
//! pools, the pools' item vectors, the behaviour policy's logs and the explicit ratings in
//! data.split's layout.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt32Array};

use crate::api::artifact::{Artifact, Outputs};
use crate::api::context::Context;
use crate::api::docs::OutputDoc;
use crate::api::error::StageError;
use crate::data::split::pool_table;
use crate::data::table::{batch, vectors};
use crate::env::world::{logs_table, world_table, Dynamics, World};

/// The outputs of a world stage (`world.synth`, `world.fit`).
pub const WORLD_OUTPUTS: &[OutputDoc] = &[
    OutputDoc {
        name: "world",
        help: "params: the world's params as JSON (irs.train, irs.eval, world.eval rebuild it); fit: a fitted world's items, tastes and affinity scale",
    },
    OutputDoc {
        name: "items",
        help: "item, topic, pool (sim, real or both); a fitted world's also source_item (the dataset's id), genre (the topic's name)",
    },
    OutputDoc { name: "sim_item_vecs", help: "id, vector: the sim pool's item vectors" },
    OutputDoc { name: "real_item_vecs", help: "id, vector: the real pool's item vectors" },
    OutputDoc {
        name: "sim",
        help: "user, item, rating, ts: sim users' and logged users' half-star ratings of the sim pool",
    },
    OutputDoc {
        name: "real_train",
        help: "user, item, rating, ts: the logged users' ratings of the real pool",
    },
    OutputDoc { name: "sim_items", help: "item, n_train_ratings: the sim pool (data.split's layout)" },
    OutputDoc { name: "real_items", help: "item, n_train_ratings: the real pool" },
    OutputDoc {
        name: "logs",
        help: "user, session, step, item, click: behaviour-policy sessions of the logged real users",
    },
];

/// Every output of a world stage, for the world `w` (see `world.synth`'s output docs).
pub fn world_outputs(ctx: &Context, w: &World) -> Result<Outputs, StageError> {
    let p = &w.p;
    let d = p.dim;
    let pool_vecs = |dy: Dynamics| {
        let pool = p.pool(dy);
        let flat = pool.iter().flat_map(|&i| w.item_vecs[i as usize * d..(i as usize + 1) * d].to_vec()).collect();
        vectors(pool.iter().map(|&i| i + 1).collect(), flat, d)
    };
    let one_based = |v: Vec<u32>| v.into_iter().map(|i| i + 1).collect::<Vec<_>>();
    let (sim, real) = (one_based(p.pool(Dynamics::Sim)), one_based(p.pool(Dynamics::Real)));
    let pool_of = |i: u32| match (sim.binary_search(&i).is_ok(), real.binary_search(&i).is_ok()) {
        (true, true) => "both",
        (true, false) => "sim",
        _ => "real",
    };
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        ("item", Arc::new(UInt32Array::from((1..=p.items as u32).collect::<Vec<_>>()))),
        ("topic", Arc::new(UInt32Array::from(w.topics.clone()))),
        ("pool", Arc::new(StringArray::from((1..=p.items as u32).map(pool_of).collect::<Vec<_>>()))),
    ];
    if let Some(f) = &w.fit {
        cols.push(("source_item", Arc::new(UInt32Array::from(f.source_items.clone()))));
        let names: Vec<&str> = f.topics.iter().map(|&t| f.topic_names[t as usize].as_str()).collect();
        cols.push(("genre", Arc::new(StringArray::from(names))));
    }
    let items = batch(cols)?;
    ctx.progress(0.3, "logging the behaviour policy's sessions");
    let logs = w.logs();
    ctx.check_cancelled()?;
    ctx.progress(0.7, "explicit ratings");
    let (sim_r, real_r) = w.ratings();
    let sim_items = pool_table(&sim, &[&sim_r])?;
    let real_items = pool_table(&real, &[&real_r])?;
    Ok(Outputs::from([
        ("world".to_string(), Artifact::Table(world_table(w)?)),
        ("items".to_string(), Artifact::Table(items)),
        ("sim_item_vecs".to_string(), Artifact::Table(pool_vecs(Dynamics::Sim)?)),
        ("real_item_vecs".to_string(), Artifact::Table(pool_vecs(Dynamics::Real)?)),
        ("logs".to_string(), Artifact::Table(logs_table(&logs)?)),
        ("sim".to_string(), Artifact::Table(sim_r.into_batch()?)),
        ("real_train".to_string(), Artifact::Table(real_r.into_batch()?)),
        ("sim_items".to_string(), Artifact::Table(sim_items)),
        ("real_items".to_string(), Artifact::Table(real_items)),
    ]))
}

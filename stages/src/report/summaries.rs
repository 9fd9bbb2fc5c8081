//! Evaluation summaries gathered into cells — (method, column) → seed → metrics — for the
//! tables and figures (`report.table`, `report.figure`): the column and the seed are the values
//! of matrix axes of the stage instance that produced each summary, as the engine hands them.

use std::collections::BTreeMap;

use arrow::array::StringArray;

use crate::api::artifact::Inputs;
use crate::api::error::StageError;
use crate::data::table::{column, f64_column};
use crate::eval::metrics::Metric;
use crate::numerics::stats::mean_ci;

/// The methods of `cells`: those named in `order` first (in that order), then the rest sorted.
pub fn ordered_methods(cells: &Cells, order: &[String]) -> Vec<String> {
    let mut methods: Vec<String> = cells.keys().map(|k| k.0.clone()).collect();
    methods.dedup();
    let mut ordered: Vec<String> = order.iter().filter(|m| methods.contains(m)).cloned().collect();
    ordered.extend(methods.iter().filter(|m| !order.contains(m)).cloned());
    ordered
}

/// A method's paired difference to the baseline in one column on metric `k`, by seed.
pub struct Paired {
    /// Mean of the paired differences.
    pub mean: f64,
    /// 95% CI half-width of the paired differences.
    pub ci: f64,
    /// Seeds paired.
    pub n: usize,
    /// The baseline's mean (over all its seeds), the denominator of a relative improvement.
    pub baseline_mean: f64,
}

/// `method` − `baseline` in column `col` on metric `k`, paired by seed; None without a pair or
/// when the baseline's mean is 0.
pub fn paired(cells: &Cells, baseline: &str, method: &str, col: &str, k: usize) -> Option<Paired> {
    let b = cells.get(&(baseline.to_string(), col.to_string()))?;
    let x = cells.get(&(method.to_string(), col.to_string()))?;
    let diffs: Vec<f64> = x.iter().filter_map(|(s, v)| b.get(s).map(|bv| v[k] - bv[k])).collect();
    let baseline_mean = b.values().map(|v| v[k]).sum::<f64>() / b.len() as f64;
    if diffs.is_empty() || baseline_mean == 0.0 {
        return None;
    }
    let (mean, ci) = mean_ci(&diffs);
    Some(Paired { mean, ci, n: diffs.len(), baseline_mean })
}

/// The share of the `baseline` → `oracle` gap that `method` closes in column `col` on metric
/// `k`: (R_method − R_baseline)/(R_oracle − R_baseline) per seed (the seeds all three have),
/// then mean and 95% CI over seeds; a seed without a gap (oracle = baseline) has no share. None
/// without such a seed.
pub fn gap_closed(cells: &Cells, baseline: &str, oracle: &str, method: &str, col: &str, k: usize) -> Option<Paired> {
    let get = |m: &str| cells.get(&(m.to_string(), col.to_string()));
    let (b, o, x) = (get(baseline)?, get(oracle)?, get(method)?);
    let shares: Vec<f64> = x
        .iter()
        .filter_map(|(s, v)| Some((v[k] - b.get(s)?[k]) / (o.get(s)?[k] - b.get(s)?[k])))
        .filter(|x| x.is_finite())
        .collect();
    if shares.is_empty() {
        return None;
    }
    let (mean, ci) = mean_ci(&shares);
    Some(Paired { mean, ci, n: shares.len(), baseline_mean: f64::NAN })
}

/// (method, column) → seed → [reward, precision, recall, f1].
pub type Cells = BTreeMap<(String, String), BTreeMap<String, [f64; 4]>>;

/// Groups every bound `summary` by method, the `columns` axis value and the `seed_axis` value;
/// also returns the column values in the order their summaries are bound (the pipeline's matrix
/// order).
pub fn collect(inputs: &Inputs, columns: Option<&str>, seed_axis: &str) -> Result<(Cells, Vec<String>), StageError> {
    let mut cells: Cells = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (from, art) in inputs.all("summary") {
        let t = art.table("summary")?;
        let methods = column::<StringArray>(t, "summary", "method")?;
        if t.num_rows() != 1 {
            return Err(StageError::Input(format!("`{from}`: a summary has one row, this has {}", t.num_rows())));
        }
        let ax = inputs.matrix_text(from);
        let col = match columns {
            Some(c) => ax
                .get(c)
                .cloned()
                .ok_or_else(|| StageError::Input(format!("`{from}` has no `{c}` matrix value (the `columns` axis)")))?,
            None => String::new(),
        };
        if !order.contains(&col) {
            order.push(col.clone());
        }
        let seed = ax.get(seed_axis).cloned().unwrap_or_default();
        let mut vals = [0.0; 4];
        for (k, m) in Metric::ALL.iter().enumerate() {
            vals[k] = f64_column(t, "summary", m.name())?[0];
        }
        let slot = cells.entry((methods.value(0).to_string(), col)).or_default();
        if slot.insert(seed.clone(), vals).is_some() {
            return Err(StageError::Input(format!(
                "two summaries for method `{}` and seed `{seed}` in one column: name the seeds with the `{seed_axis}` axis",
                methods.value(0)
            )));
        }
    }
    if cells.is_empty() {
        return Err(StageError::Input("no summaries bound to `summary`".into()));
    }
    Ok((cells, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_closed_is_the_per_seed_share_of_the_baseline_to_oracle_gap() {
        let mut cells: Cells = BTreeMap::new();
        let put = |cells: &mut Cells, m: &str, seed: &str, r: f64| {
            cells.entry((m.to_string(), "1".to_string())).or_default().insert(seed.to_string(), [r, r, 0.0, 0.0]);
        };
        for (seed, b, o, x) in [("1", 0.2, 0.4, 0.3), ("2", 0.1, 0.5, 0.4), ("3", 0.3, 0.4, 0.3)] {
            put(&mut cells, "dqn_r", seed, b);
            put(&mut cells, "oracle", seed, o);
            put(&mut cells, "s2r_no_rep", seed, x);
        }
        // Shares 0.5, 0.75, 0: mean 5/12.
        let g = gap_closed(&cells, "dqn_r", "oracle", "s2r_no_rep", "1", 0).unwrap();
        assert_eq!(g.n, 3);
        assert!((g.mean - 5.0 / 12.0).abs() < 1e-12, "{}", g.mean);
        assert!(g.ci > 0.0);
        assert!(gap_closed(&cells, "dqn_r", "oracle", "s2r_no_rep", "2", 0).is_none(), "no such column");
        let o = gap_closed(&cells, "dqn_r", "oracle", "oracle", "1", 0).unwrap();
        assert!((o.mean - 1.0).abs() < 1e-12, "the oracle closes its own gap");
    }
}

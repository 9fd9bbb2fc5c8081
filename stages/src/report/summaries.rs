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

//! libtorch glue shared by the neural stages (`torch` feature): device mapping, deterministic
//! seeding, and weights as safetensors bytes (what the store keeps for `Artifact::Weights`).

use crate::api::device::Device;
use crate::api::error::StageError;

/// The tch device for a placement.
pub fn tch_device(d: Device) -> tch::Device {
    match d {
        Device::Cpu => tch::Device::Cpu,
        Device::Cuda(i) => tch::Device::Cuda(i),
    }
}

/// Runs `f` (e.g. building a model, whose initialisation draws from libtorch's generator) right
/// after seeding, under a process-wide lock. libtorch has one global generator: stages running
/// in parallel would otherwise interleave their draws and make each other's results depend on
/// timing. Stages draw everything else from their own seeded Rust RNG.
pub fn seeded<T>(seed_value: u64, f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed_value as i64);
    f()
}

/// Moves every store (built on the CPU, typically inside [`seeded`]) to `device`. Models are
/// initialised on the CPU and then moved because CUDA's generator draws other numbers than the
/// CPU's for the same seed: built on the device, a CUDA run would start from other weights and
/// could not match the CPU run's results.
pub fn to_device(stores: &mut [&mut tch::nn::VarStore], device: tch::Device) {
    for vs in stores {
        vs.set_device(device);
    }
}

/// The scalar value of a loss, or an error naming the loss and the iteration when it is NaN/inf.
pub fn finite(t: &tch::Tensor, loss: &str, iteration: usize) -> Result<f64, StageError> {
    let v = t.double_value(&[]);
    if v.is_finite() {
        Ok(v)
    } else {
        Err(StageError::NonFinite { loss: loss.into(), iteration })
    }
}

/// `k` indices in `0..n` drawn with replacement from `rng`, as an int64 tensor on `device`.
pub fn random_indices(rng: &mut rand_chacha::ChaCha8Rng, n: i64, k: i64, device: tch::Device) -> tch::Tensor {
    use rand::Rng;
    let v: Vec<i64> = (0..k).map(|_| rng.random_range(0..n.max(1))).collect();
    tch::Tensor::from_slice(&v).to_device(device)
}

/// Serializes every variable of `vs` as safetensors bytes (sorted names, so deterministic).
pub fn weights_bytes(vs: &tch::nn::VarStore, scratch: &std::path::Path) -> Result<Vec<u8>, StageError> {
    let path = scratch.join("weights.safetensors");
    let mut named: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let refs: Vec<(&str, tch::Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t.to(tch::Device::Cpu))).collect();
    tch::Tensor::write_safetensors(&refs, &path)
        .map_err(|e| StageError::Failed(format!("cannot write weights: {e}")))?;
    std::fs::read(&path).map_err(|source| StageError::Io { path, source })
}

/// The named tensors of safetensors bytes (`what` names the input in errors). The one reader
/// of weights artifacts.
pub fn read_safetensors(
    bytes: &[u8],
    scratch: &std::path::Path,
    what: &str,
) -> Result<Vec<(String, tch::Tensor)>, StageError> {
    let path = scratch.join(format!("{what}.safetensors"));
    std::fs::write(&path, bytes).map_err(|source| StageError::Io { path: path.clone(), source })?;
    tch::Tensor::read_safetensors(&path).map_err(|e| StageError::Input(format!("cannot read `{what}`: {e}")))
}

/// Copies `named(name)` into every variable of `vs` (each must be there, with its shape); errors
/// name the artifact `what`.
pub fn copy_named<'t>(
    vs: &tch::nn::VarStore,
    named: &dyn Fn(&str) -> Option<&'t tch::Tensor>,
    what: &str,
) -> Result<(), StageError> {
    for (name, mut var) in vs.variables() {
        let src = named(&name).ok_or_else(|| StageError::Input(format!("`{what}` has no `{name}`")))?;
        if src.size() != var.size() {
            return Err(StageError::Input(format!(
                "`{what}` `{name}` is {:?}, the model needs {:?} (same `dim` as the item vectors?)",
                src.size(),
                var.size()
            )));
        }
        tch::no_grad(|| var.copy_(&src.to_device(var.device())));
    }
    Ok(())
}

/// Loads safetensors bytes into the matching variables of `vs`.
pub fn load_weights(vs: &mut tch::nn::VarStore, bytes: &[u8], scratch: &std::path::Path) -> Result<(), StageError> {
    let named: std::collections::HashMap<String, tch::Tensor> =
        read_safetensors(bytes, scratch, "weights")?.into_iter().collect();
    copy_named(vs, &|name| named.get(name), "weights")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module, OptimizerConfig};

    #[test]
    fn a_linear_model_learns_and_its_weights_round_trip_through_safetensors() {
        let dir = tempfile::tempdir().unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let (lin, x) = seeded(0, || {
            (
                nn::linear(vs.root() / "lin", 3, 1, Default::default()),
                tch::Tensor::randn([256, 3], (tch::Kind::Float, tch::Device::Cpu)),
            )
        });
        let mut opt = nn::Adam::default().build(&vs, 0.05).unwrap();
        let w = tch::Tensor::from_slice(&[1.5f32, -2.0, 0.5]).view([3, 1]);
        let y = x.matmul(&w) + 0.3;
        let loss0 = lin.forward(&x).mse_loss(&y, tch::Reduction::Mean).double_value(&[]);
        for _ in 0..400 {
            let loss = lin.forward(&x).mse_loss(&y, tch::Reduction::Mean);
            opt.backward_step(&loss);
        }
        let loss1 = lin.forward(&x).mse_loss(&y, tch::Reduction::Mean).double_value(&[]);
        assert!(loss1 < loss0 * 1e-3, "{loss0} → {loss1}");
        let bytes = weights_bytes(&vs, dir.path()).unwrap();
        assert_eq!(bytes, weights_bytes(&vs, dir.path()).unwrap(), "deterministic bytes");
        let mut vs2 = nn::VarStore::new(tch::Device::Cpu);
        let lin2 = nn::linear(vs2.root() / "lin", 3, 1, Default::default());
        load_weights(&mut vs2, &bytes, dir.path()).unwrap();
        let diff = (lin2.forward(&x) - lin.forward(&x)).abs().max().double_value(&[]);
        assert_eq!(diff, 0.0);
    }
}

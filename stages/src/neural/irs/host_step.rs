//! The rollout's network on the CPU ([`HostStepper`]): the folded weights of a [`Stepper`], its
//! matrix products and σ through the same libtorch calls on buffers the stepper owns, and
//! everything else — gathering the LSTM's inputs, the cell's elementwise arithmetic, Q's constant
//! and popularity terms — in Rust loops over those buffers.
//!
//! Why: a rollout step is two small products (Q of the exploiting users, `k × H · H × n`, and the
//! LSTM's `B × H · H × 4H`) and ~20 elementwise libtorch ops on `B × 4H` tensors. The products
//! run near the core's peak, but each elementwise op paid a dispatch, an allocation and a
//! (broadcasting) loop of its own, and Q was copied to the host for the pick: together ≈ 40 % of
//! a step in the profile. Here they are a few passes over memory that stays in cache.
//!
//! The arithmetic is the tensor [`Stepper`]'s, operation for operation (the same BLAS calls on
//! buffers libtorch allocated, so aligned as before; the same σ kernel on the same shapes; the
//! same order of the elementwise products and sums, which Rust neither fuses nor reorders), so
//! the sessions are the same to the bit — tested. Only the popularity term (off by default)
//! differs by rounding: π's dot product is summed in Rust.

use tch::{Device, Kind, Tensor};

use crate::neural::irs::qnet::Stepper;

/// A float buffer on the CPU that Rust reads and writes and libtorch computes into: memory
/// libtorch allocated (a tensor this buffer alone holds), lent to libtorch one call at a time
/// through views that do not outlive the call.
struct Buf {
    t: Tensor,
    ptr: *mut f32,
    len: usize,
}

impl Buf {
    fn zeros(len: usize) -> Self {
        let t = Tensor::zeros([len as i64], (Kind::Float, Device::Cpu));
        let ptr = t.data_ptr().cast::<f32>();
        Self { t, ptr, len }
    }

    fn as_slice(&self) -> &[f32] {
        // SAFETY: `ptr` is the start of `t`'s `len` floats, which only this buffer holds; the
        // views lent to libtorch are dropped before any Rust access (see `view`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    fn as_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// The first `rows · cols` values as a `rows × cols` tensor, for one libtorch call that only
    /// reads it.
    fn view(&self, rows: usize, cols: usize) -> Tensor {
        assert!(rows * cols <= self.len, "a {rows} × {cols} view of {} values", self.len);
        self.t.narrow(0, 0, (rows * cols) as i64).view([rows as i64, cols as i64])
    }

    /// [`Buf::view`] for a call that writes it: `&mut self`, so that no slice of the buffer is
    /// alive meanwhile.
    fn view_mut(&mut self, rows: usize, cols: usize) -> Tensor {
        self.view(rows, cols)
    }
}

/// A tensor's values on the host.
fn host(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_kind(Kind::Float).contiguous().view([-1])).expect("a float tensor")
}

/// The rollout's network on the CPU for `B` sessions at once: holds the state (h, c) of each and
/// computes Q rows and LSTM steps in place, with the tensor [`Stepper`]'s arithmetic. Call it
/// without gradient.
pub struct HostStepper {
    n: usize,
    d: usize,
    hid: usize,
    b: usize,
    /// The pool's item vectors, `n × D`.
    items: Vec<f32>,
    /// `D × 4H`: W_ih[:, :D]ᵀ.
    w_x_t: Tensor,
    /// `4H`: b_ih + b_hh.
    b_x: Vec<f32>,
    /// `4H`: the reward's column of W_ih.
    w_r: Vec<f32>,
    /// `n × 4H`: W_ih[:, :D] e_a + b_ih + b_hh, for the items in `x_done`.
    x_items: Vec<f32>,
    x_done: Vec<bool>,
    /// `H × 4H`: W_hhᵀ.
    w_hh_t: Tensor,
    /// `H × n`: Gᵀ W e_a for every item.
    q_items_t: Tensor,
    /// `n`: ⟨g_b, W e_a⟩ + b (+ b_a).
    q_const: Vec<f32>,
    /// π's weight (`H`) and bias, and the pool's popularity (`n`).
    pop: Option<(Vec<f32>, f32, Vec<f32>)>,
    /// The state, `B × H` each; `h_zero` while h is all zeros (before the first step).
    h: Buf,
    c: Vec<f32>,
    h_zero: bool,
    /// Buffers: the gates (`B × 4H`), the exploiting users' states (`B × H`), their Q (`B × n`),
    /// and the newly served items' vectors and input projections (`B × D`, `B × 4H`).
    gates: Buf,
    rows: Buf,
    q: Buf,
    e_new: Buf,
    x_new: Buf,
    /// The items whose rows of `x_new` are being computed, in order.
    new_items: Vec<usize>,
}

impl HostStepper {
    /// The stepper `s` (folded for a pool on the CPU) for `b` sessions, all at h = c = 0.
    pub fn new(s: Stepper, b: usize) -> Self {
        let (n, d) = (s.items.size()[0] as usize, s.items.size()[1] as usize);
        let hid = s.w_hh_t.size()[0] as usize;
        let g4 = 4 * hid;
        let pop = s.pop.map(|(w, bias, pop)| (host(&w), host(&bias)[0], host(&pop)));
        Self {
            n,
            d,
            hid,
            b,
            items: host(&s.items),
            w_x_t: s.w_x_t,
            b_x: host(&s.b_x),
            w_r: host(&s.w_r),
            x_items: vec![0.0; n * g4],
            x_done: vec![false; n],
            w_hh_t: s.w_hh_t,
            q_items_t: s.q_items_t,
            q_const: host(&s.q_const),
            pop,
            h: Buf::zeros(b * hid),
            c: vec![0.0; b * hid],
            h_zero: true,
            gates: Buf::zeros(b * g4),
            rows: Buf::zeros(b * hid),
            q: Buf::zeros(b * n),
            e_new: Buf::zeros(b * d),
            x_new: Buf::zeros(b * g4),
            new_items: Vec::with_capacity(b),
        }
    }

    /// The state h of every session (`B × H`).
    pub fn h(&self) -> &[f32] {
        self.h.as_slice()
    }

    /// Q of every item (`n` per row) for the sessions `users` (in that order), or, with `None`,
    /// for the first `k` sessions; returned row by row, to be overwritten at will until the next
    /// call.
    pub fn q(&mut self, users: Option<&[usize]>, k: usize) -> &mut [f32] {
        let (n, hid) = (self.n, self.hid);
        assert!(k <= self.b, "{k} rows of {} sessions", self.b);
        let src = match users {
            Some(users) => {
                assert_eq!(users.len(), k, "one row per user");
                let h = self.h.as_slice();
                for (row, &u) in self.rows.as_mut().chunks_exact_mut(hid).zip(users) {
                    row.copy_from_slice(&h[u * hid..(u + 1) * hid]);
                }
                &self.rows
            }
            None => &self.h,
        };
        // q = q_const + h Q, as `addmm` with q_const broadcast over the rows computes it.
        for row in self.q.as_mut()[..k * n].chunks_exact_mut(n) {
            row.copy_from_slice(&self.q_const);
        }
        let _ = self.q.view_mut(k, n).addmm_(&src.view(k, hid), &self.q_items_t);
        if let Some((w, b, p)) = &self.pop {
            let src = src.as_slice();
            for (j, row) in self.q.as_mut()[..k * n].chunks_exact_mut(n).enumerate() {
                let pi = src[j * hid..(j + 1) * hid].iter().zip(w).fold(0.0f32, |acc, (&x, &w)| acc + x * w) + b;
                for (v, &p) in row.iter_mut().zip(p) {
                    *v += pi * p;
                }
            }
        }
        &mut self.q.as_mut()[..k * n]
    }

    /// One LSTM step of every session: the served `actions` (items of the pool) and their
    /// `rewards` → the next (h, c).
    pub fn step(&mut self, actions: &[i64], rewards: &[f32]) {
        let (d, hid, g4) = (self.d, self.hid, 4 * self.hid);
        assert!(actions.len() == self.b && rewards.len() == self.b, "one action and reward per session");
        // The input projections of the items served for the first time in this rollout: their
        // vectors gathered, one product, and each row (+ b_ih + b_hh) stored for the item.
        self.new_items.clear();
        let e_new = self.e_new.as_mut();
        for &a in actions {
            let a = a as usize;
            if !std::mem::replace(&mut self.x_done[a], true) {
                let m = self.new_items.len();
                e_new[m * d..(m + 1) * d].copy_from_slice(&self.items[a * d..(a + 1) * d]);
                self.new_items.push(a);
            }
        }
        let m = self.new_items.len();
        if m > 0 {
            let _ = self.e_new.view(m, d).mm_out(&self.x_new.view_mut(m, g4), &self.w_x_t);
            for (&a, row) in self.new_items.iter().zip(self.x_new.as_slice().chunks_exact(g4)) {
                for ((x, &v), &b) in self.x_items[a * g4..(a + 1) * g4].iter_mut().zip(row).zip(&self.b_x) {
                    *x = v + b;
                }
            }
        }
        // The gates: x = (W_ih[:, :D] e_a + b_ih + b_hh) + r W_ih[:, D], then += h W_hhᵀ.
        for ((g, &a), &r) in self.gates.as_mut().chunks_exact_mut(g4).zip(actions).zip(rewards) {
            let x = &self.x_items[a as usize * g4..(a as usize + 1) * g4];
            for ((g, &x), &w) in g.iter_mut().zip(x).zip(&self.w_r) {
                *g = x + r * w;
            }
        }
        if !self.h_zero {
            let _ = self.gates.view_mut(self.b, g4).addmm_(&self.h.view(self.b, hid), &self.w_hh_t);
        }
        // The cell: c ← σ(f)·c + σ(i)·tanh(g), h ← σ(o)·tanh(c), tanh x = 2σ(2x) − 1 (libtorch's
        // order of the gates: i, f, g, o).
        for g in self.gates.as_mut().chunks_exact_mut(g4) {
            for v in &mut g[2 * hid..3 * hid] {
                *v *= 2.0;
            }
        }
        let _ = self.gates.view_mut(self.b, g4).sigmoid_();
        let (gates, h) = (self.gates.as_slice(), self.h.as_mut());
        for ((g, c), h) in gates.chunks_exact(g4).zip(self.c.chunks_exact_mut(hid)).zip(h.chunks_exact_mut(hid)) {
            let (gi, rest) = g.split_at(hid);
            let (gf, gg) = rest.split_at(hid);
            for ((((&i, &f), &g), c), h) in gi.iter().zip(gf).zip(&gg[..hid]).zip(c.iter_mut()).zip(h.iter_mut()) {
                *c = f * *c + i * (g * 2.0 - 1.0);
                *h = *c * 2.0;
            }
        }
        let _ = self.h.view_mut(self.b, hid).sigmoid_();
        let (gates, h) = (self.gates.as_slice(), self.h.as_mut());
        for (g, h) in gates.chunks_exact(g4).zip(h.chunks_exact_mut(hid)) {
            for (&o, h) in g[3 * hid..].iter().zip(h.iter_mut()) {
                *h = o * (*h * 2.0 - 1.0);
            }
        }
        self.h_zero = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neural::irs::episode::{popularity, Domain, Side};
    use crate::neural::irs::qnet::testing::random_net;
    use crate::neural::irs::qnet::ItemBias;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use tch::nn;

    #[test]
    fn the_host_stepper_gives_the_tensor_steppers_bits() {
        // Without the popularity term the host stepper computes what the tensor stepper does,
        // operation for operation: Q rows (the first k sessions and a subset in another order)
        // and the states must be equal to the bit, items served twice or again later included.
        let cpu = tch::Device::Cpu;
        tch::manual_seed(6);
        let vs = nn::VarStore::new(cpu);
        let (d, h, n, b, t) = (16i64, 32i64, 50i64, 8usize, 6usize);
        let net = random_net(&vs, d, h, ItemBias { sim: Some(n), real: None, ..Default::default() }, 0.4);
        let dom = Domain::raw(Tensor::randn([n, d], (Kind::Float, cpu)), Side::Sim);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut host = tch::no_grad(|| HostStepper::new(net.stepper(&dom), b));
        let mut tensor = tch::no_grad(|| net.stepper(&dom));
        let zero = Tensor::zeros([b as i64, h], (Kind::Float, cpu));
        let mut hc = (zero.shallow_clone(), zero);
        let q_buf = Tensor::empty([b as i64, n], (Kind::Float, cpu));
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let of = |t: &Tensor| Vec::<f32>::try_from(&t.contiguous().view([-1])).unwrap();
        for step in 0..t {
            let users = [5usize, 2, 7];
            let idx = Tensor::from_slice(&users.iter().map(|&u| u as i64).collect::<Vec<_>>());
            for (rows, k) in [(None, b), (None, 3), (Some(&users[..]), 3)] {
                let got = tch::no_grad(|| host.q(rows, k).to_vec());
                let hs = match rows {
                    Some(_) => hc.0.index_select(0, &idx),
                    None => hc.0.narrow(0, 0, k as i64),
                };
                let want = q_buf.narrow(0, 0, k as i64);
                tch::no_grad(|| tensor.q_into(&hs, &want));
                assert_eq!(bits(&got), bits(&of(&want)), "step {step}: Q of {rows:?}, k = {k}");
            }
            let a: Vec<i64> = (0..b).map(|i| if i < 2 { 3 } else { rng.random_range(0..n) }).collect();
            let r: Vec<f32> = (0..b).map(|_| rng.random_range(0.0f32..1.0)).collect();
            tch::no_grad(|| host.step(&a, &r));
            hc = tch::no_grad(|| tensor.step(&a, &Tensor::from_slice(&r), &hc, step == 0));
            assert_eq!(bits(host.h()), bits(&of(&hc.0)), "step {step}: h");
        }
        assert!(hc.0.abs().max().double_value(&[]) > 1e-2, "a state of zeros compares nothing");
    }

    #[test]
    fn the_host_stepper_equals_the_sequence_kernel_and_q() {
        // As `the_stepper_equals_the_sequence_kernel_and_q` (qnet.rs), for the CPU's stepper: its
        // states are the LSTM's over the history, its Q rows (all sessions, the first k, or a
        // subset in another order) are `QNet::q`, with per-item biases and the popularity term,
        // and items served twice in a step or again later are projected once.
        let cpu = tch::Device::Cpu;
        tch::manual_seed(4);
        let vs = nn::VarStore::new(cpu);
        let (d, h, n, b, t) = (6i64, 10i64, 9i64, 4i64, 5i64);
        let net = random_net(
            &vs,
            d,
            h,
            ItemBias { sim: None, real: Some(n), popularity: true, popularity_per_pool: false },
            0.5,
        );
        let p = Tensor::from_slice(&popularity(&[0, 1, 2, 3, 5, 8, 13, 21, 34]));
        let items = Tensor::randn([n, d], (Kind::Float, cpu));
        let dom = Domain::raw(items.shallow_clone(), Side::Real).with_pop(Some(p));
        // Session 0 and 1 are served the same items; item 2 comes back later.
        let acts: Vec<i64> = vec![1, 1, 2, 3, 4, 4, 5, 6, 0, 0, 7, 2, 8, 8, 2, 1, 3, 3, 6, 5];
        let actions = Tensor::from_slice(&acts).view([t, b]).tr().contiguous();
        let rewards = Tensor::rand([b, t], (Kind::Float, cpu));
        let states = tch::no_grad(|| net.states(&items, &actions, &rewards));
        let mut host = tch::no_grad(|| HostStepper::new(net.stepper(&dom), b as usize));
        let max_diff = |got: &[f32], want: &Tensor| {
            let want = Vec::<f32>::try_from(&want.contiguous().view([-1])).unwrap();
            assert_eq!(got.len(), want.len());
            got.iter().zip(&want).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        };
        let rows_of = |h: &[f32], users: &[i64]| {
            let all = Tensor::from_slice(h).view([b, -1]);
            all.index_select(0, &Tensor::from_slice(users))
        };
        for step in 0..t {
            let hs = host.h().to_vec();
            let all = tch::no_grad(|| net.q(&Tensor::from_slice(&hs).view([b, h]), &dom));
            let q = tch::no_grad(|| host.q(None, b as usize).to_vec());
            assert!(max_diff(&q, &all) < 1e-5, "step {step}: all rows");
            let q = tch::no_grad(|| host.q(None, 2).to_vec());
            assert!(max_diff(&q, &all.narrow(0, 0, 2)) < 1e-5, "step {step}: the first rows");
            let q = tch::no_grad(|| host.q(Some(&[3, 1]), 2).to_vec());
            let want = tch::no_grad(|| net.q(&rows_of(&hs, &[3, 1]), &dom));
            assert!(max_diff(&q, &want) < 1e-5, "step {step}: rows 3, 1");
            let a = Vec::<i64>::try_from(actions.select(1, step)).unwrap();
            let r = Vec::<f32>::try_from(rewards.select(1, step)).unwrap();
            tch::no_grad(|| host.step(&a, &r));
            let want = states.select(1, step + 1);
            assert!(max_diff(host.h(), &want) < 1e-5, "step {step}: h");
            assert!(want.abs().max().double_value(&[]) > 1e-3, "a state of zeros compares nothing");
        }
    }
}

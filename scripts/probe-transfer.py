#!/usr/bin/env python3
"""What transfers from the sim SVD to the real one, and which of Q's terms ranks the real pool.

The README's "DQN-R and popularity" and "DQN-R and the width of the representation" quote these
measurements. Run from the repository root after the study pipelines, with a Python that has numpy
and pyarrow (`terms` also needs torch and safetensors), e.g. the irs bench's reference venv:

  scripts/probe-transfer.py components pipelines/study-popularity.yaml
  scripts/probe-transfer.py terms pipelines/study-popularity.yaml anime_pop_pool anime
  scripts/probe-transfer.py terms pipelines/study-popularity.yaml ml_pop_pool ml --set ml_pop_pool.real_negatives=0

`components`, per rq1 pair of both datasets (stages `{ds}_split`, `{ds}_svd`, matrix `pair`): the
correlation of the shared users' sim and real vectors per component; the validation reward of
ranking the real pool by its leading SVD component, next to most-popular (counts in real_train).

`terms`, per pair, mean of seeds 1-3 (stage `STAGE[pair=…,seed=…]`, an irs.train with
`popularity: true` and `val`): greedy validation sessions replayed with the whole Q, the item term
⟨g(s), W e_a⟩ (+ b) alone, and π(s)·p_a alone; the item term's correlation with p_a and the two
terms' spread over the pool at a session's first and 17th step. The `full` column equals the
stage's own val_curve at its last iteration (the replay is the same greedy policy).
"""
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq

S2R = "./target/release/s2r-pipe"
PAIRS = {
    "ml": (5.0, ["Adventure_Crime", "Drama_Comedy", "Thriller_Action"]),
    "anime": (10.0, ["Movie_TV", "TV_OVA", "OVA_Movie"]),
}
T = 32


def path(pipeline, sets, artifact):
    return subprocess.check_output([S2R, "path", pipeline, *sets, artifact], text=True).strip()


def table(pipeline, sets, artifact):
    return pq.read_table(path(pipeline, sets, artifact)).to_pydict()


def ratings_by_user(t):
    users = {}
    for u, i, y in zip(t["user"], t["item"], t["rating"]):
        users.setdefault(u, {})[i] = y
    return users


def reward(rated, item, y_max):
    """The signed replay reward: 2y/y_max − 1 for a rated item, 0 for an unrated one."""
    y = rated.get(item)
    return 0.0 if y is None else 2.0 * y / y_max - 1.0


def components(pipeline, sets):
    for ds, (y_max, pairs) in PAIRS.items():
        for pair in pairs:
            def vec(name):
                t = table(pipeline, sets, f"{ds}_svd[pair={pair}].{name}")
                return {i: np.array(v) for i, v in zip(t["id"], t["vector"])}

            su, ru = vec("sim_user_vecs"), vec("real_user_vecs")
            shared = sorted(set(su) & set(ru))
            s, r = np.array([su[u] for u in shared]), np.array([ru[u] for u in shared])
            live = [k for k in range(min(8, s.shape[1])) if s[:, k].std() > 0 and r[:, k].std() > 0]
            rho = [np.corrcoef(s[:, k], r[:, k])[0, 1] for k in live]
            items = table(pipeline, sets, f"{ds}_svd[pair={pair}].real_item_vecs")
            ids, v = items["id"], np.array(items["vector"])
            counts = {}
            for i in table(pipeline, sets, f"{ds}_split[pair={pair}].real_train")["item"]:
                counts[i] = counts.get(i, 0) + 1
            c = np.array([counts.get(i, 0) for i in ids])
            val = ratings_by_user(table(pipeline, sets, f"{ds}_split[pair={pair}].val"))

            def score(order):
                return np.mean([np.mean([reward(r, ids[a], y_max) for a in order[:T]]) for r in val.values()])

            lead, popular = score(np.argsort(-v[:, 0], kind="stable")), score(np.argsort(-c, kind="stable"))
            print(
                f"{ds} {pair}: {len(shared)} shared users, ρ of components 1-8 {np.round(rho, 2).tolist()}; "
                f"leading component vs ln(1 + count) ρ {np.corrcoef(v[:, 0], np.log1p(c))[0, 1]:.2f}; "
                f"validation reward: by the leading component {lead:.3f}, most popular {popular:.3f}",
                flush=True,
            )


def terms(pipeline, stage, ds, sets):
    import torch
    from safetensors.torch import load_file

    y_max, pairs = PAIRS[ds]
    for pair in pairs:
        rows = []
        for seed in (1, 2, 3):
            sid = f"{stage}[pair={pair},seed={seed}]"
            w = load_file(path(pipeline, sets, sid + ".weights"))
            iv = table(pipeline, sets, sid + ".real_item_vecs")
            ids, e, p = iv["id"], torch.tensor(np.array(iv["vector"], dtype=np.float32)), torch.tensor(iv["pop"])
            val = ratings_by_user(table(pipeline, sets, f"{ds}_split[pair={pair}].val"))
            hidden = w["lstm.weight_hh_l0"].shape[1]
            lstm = torch.nn.LSTM(e.shape[1] + 1, hidden, batch_first=True)
            for k in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]:
                getattr(lstm, k).data = w["lstm." + k]
            we = e @ w["w.weight"].T
            pi = "pop_real" if "pop_real.weight" in w else "pop"
            out, stats = {}, []
            for mode in ("full", "item", "pop"):
                per_user = []
                for _, rated in sorted(val.items()):
                    h = torch.zeros(1, 1, hidden)
                    c = torch.zeros_like(h)
                    served = torch.zeros(len(ids), dtype=torch.bool)
                    rs = []
                    for t in range(T):
                        s = h[0, 0]
                        item = (w["g.weight"] @ s + w["g.bias"]) @ we.T + w["b"]
                        popt = (w[pi + ".weight"] @ s + w[pi + ".bias"]) * p
                        if mode == "full" and t in (0, 16):
                            rho = np.corrcoef(item.numpy(), p.numpy())[0, 1]
                            stats.append((rho, item.std().item(), popt.std().item()))
                        q = {"full": item + popt, "item": item, "pop": popt}[mode].clone()
                        q[served] = -float("inf")
                        a = int(q.argmax())
                        served[a] = True
                        r = reward(rated, ids[a], y_max)
                        rs.append(r)
                        with torch.no_grad():
                            _, (h, c) = lstm(torch.cat([e[a], torch.tensor([r])]).view(1, 1, -1), (h, c))
                    per_user.append(np.mean(rs))
                out[mode] = np.mean(per_user)
            st = np.array(stats)
            out["rho(item, p)"], out["spread item/pop"] = st[:, 0].mean(), st[:, 1].mean() / st[:, 2].mean()
            rows.append(out)
        mean = {k: np.mean([r[k] for r in rows]) for k in rows[0]}
        print(f"{ds} {pair}: " + ", ".join(f"{k} {v:.3f}" for k, v in mean.items()), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "components":
        components(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "terms":
        terms(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        sys.exit(__doc__)

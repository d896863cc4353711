"""How far do frozen MiniLM features go? Variants of the reward model's inputs on the quality benchmark's split.

    PYTHONPATH=. python benchmarks/experiment_reward_features.py --data ../shared/data/preference_dev.jsonl \
        [--embedding-cache /tmp/dev_minilm.npz] [--extra-cache /tmp/dev_minilm_extra.npz]

Issue 11 asks for a scorer stronger than a linear head on frozen sentence embeddings "where it pays". Before
paying for a fine-tuned encoder (`experiment_cross_encoder.py`), this asks whether cheaper inputs to the
same kind of head move pairwise accuracy. Each variant is one Bradley-Terry head (L2-regularised logistic
regression on chosen - rejected features, both orientations, no intercept) fitted on the training part of
`bench_reward_quality.py`'s protocol (a), the 80/20 split grouped by prompt, and tested on its test part:
- `base`: the shipped model's features, [e_p, e_r, e_p*e_r, |e_p-e_r|] of the whole prompt and the response;
- `+ log length`: the same plus the log-length difference, kept (the shipped model drops it: debiasing);
- `+ tf-idf`: the same plus word 1-2-gram TF-IDF of the response (fitted on training responses only);
- `last turn`: the prompt replaced by its last human turn (a transcript's first 256 tokens, which is what
  MiniLM reads of a long prompt, are often not the request being answered);
- `joint`: one embedding of "last turn + response" read together (MiniLM's attention sees both), with
  and without the base features.
- `MLP head`: the base features through a small nonlinear head (one hidden layer), three seeds.
`C` is the inverse L2 strength. Last, a learning curve: the shipped recipe trained on 1/8, 1/4, 1/2 and all
of the training prompts (nested, grouped), tested on the same pairs: does more data or better input pay? The shipped model (v2: per-dimension heads, gate, length dropped) is the
first row, trained exactly as `bench_reward_quality.py` trains it. Accuracy is the share of test pairs
ordered as people ordered them, with a 95% Wilson interval.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_reward_quality import SPLIT_SALT, accuracy, cached_embedder, cell, dev_set, margins  # noqa: E402

from hominem_pipeline.embedding import Embedder  # noqa: E402
from hominem_pipeline.records import content_hash  # noqa: E402
from hominem_pipeline.reward_model.dataset import Pair, validation_groups  # noqa: E402
from hominem_pipeline.reward_model.model import pair_features  # noqa: E402
from hominem_pipeline.reward_model.train import train_reward_model  # noqa: E402
from hominem_pipeline.settings import REPO_ROOT  # noqa: E402

_HUMAN = re.compile(r"(?:^|\n\n)Human:")


def last_turn(prompt: str) -> str:
    """The last human turn of an HH-style transcript ("Human: ... Assistant: ..."); other prompts as they are."""
    parts = _HUMAN.split(prompt)
    return parts[-1].split("\n\nAssistant:")[0].strip() if len(parts) > 1 else prompt


def joint(prompt: str, response: str) -> str:
    return f"{last_turn(prompt)}\n\n{response}"


def bt_margins(x_train: np.ndarray, x_test: np.ndarray, c: float) -> np.ndarray:
    """One Bradley-Terry head: logistic regression on (chosen - rejected), both orientations, no intercept."""
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([x_train, -x_train])
    y = np.r_[np.ones(len(x_train)), np.zeros(len(x_train))]
    clf = LogisticRegression(C=c, fit_intercept=False, max_iter=5000).fit(x, y)
    return x_test @ clf.coef_.ravel()


def mlp_margins(
    chosen: np.ndarray, rejected: np.ndarray, test_chosen: np.ndarray, test_rejected: np.ndarray, seed: int
) -> np.ndarray:
    """A nonlinear head on the same features: s(x) = MLP(x) (one hidden layer of 32, GELU, dropout),
    Bradley-Terry loss on s(chosen) - s(rejected), AdamW (lr 1e-3, weight decay 0.01), 20 epochs of 64 pairs."""
    import torch

    torch.manual_seed(seed)
    a, b = torch.tensor(chosen, dtype=torch.float32), torch.tensor(rejected, dtype=torch.float32)
    net = torch.nn.Sequential(
        torch.nn.Dropout(0.1),
        torch.nn.Linear(a.shape[1], 32),
        torch.nn.GELU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(32, 1),
    )
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    for _ in range(20):
        net.train()
        perm = torch.randperm(len(a))
        for i in range(0, len(a), 64):
            idx = perm[i : i + 64]
            loss = -torch.nn.functional.logsigmoid(net(a[idx]) - net(b[idx])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        tc = torch.tensor(test_chosen, dtype=torch.float32)
        tr = torch.tensor(test_rejected, dtype=torch.float32)
        return (net(tc) - net(tr)).ravel().numpy().astype(np.float64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "preference_dev.jsonl"
    )
    ap.add_argument("--embedding-cache", type=Path, default=None, help="npz of the texts' MiniLM vectors")
    ap.add_argument("--extra-cache", type=Path, default=None, help="npz of last turns and joint texts")
    args = ap.parse_args()
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    cfg, manifold, pairs = dev_set(args.data)
    held = validation_groups({content_hash(p.prompt) for p in pairs}, 0.2, SPLIT_SALT)
    train = [p for p in pairs if content_hash(p.prompt) not in held]
    test = [p for p in pairs if content_hash(p.prompt) in held]
    sources = sorted({p.source for p in test})
    embedder, seconds = cached_embedder(
        cfg, args.embedding_cache, {t for p in pairs for t in (p.prompt, p.chosen, p.rejected)}
    )
    extra, extra_seconds = cached_embedder(
        cfg,
        args.extra_cache,
        {last_turn(p.prompt) for p in pairs}
        | {joint(p.prompt, r) for p in pairs for r in (p.chosen, p.rejected)},
    )
    print(
        f"data: {args.data}; train {len(train)}, test {len(test)} (protocol (a)); "
        f"{embedder.texts_encoded + extra.texts_encoded} texts encoded in {seconds + extra_seconds:.1f} s"
    )

    def emb(texts: list[str], which: Embedder = embedder) -> np.ndarray:
        return which.embed(texts).astype(np.float64)

    def feats(ps: list[Pair], side: str, kind: str) -> np.ndarray:
        resp = [getattr(p, side) for p in ps]
        blocks = []
        if kind in ("base", "base+joint"):
            blocks.append(pair_features(emb([p.prompt for p in ps]), emb(resp)))
        if kind in ("last turn", "last turn+joint"):
            blocks.append(pair_features(emb([last_turn(p.prompt) for p in ps], extra), emb(resp)))
        if kind in ("joint", "base+joint", "last turn+joint"):
            j = emb([joint(p.prompt, r) for p, r in zip(ps, resp, strict=True)], extra)
            blocks.append(np.hstack([j, j * emb([last_turn(p.prompt) for p in ps], extra)]))
        return np.hstack(blocks).astype(np.float64)

    def diff(ps: list[Pair], kind: str) -> np.ndarray:
        return feats(ps, "chosen", kind) - feats(ps, "rejected", kind)

    def loglen(ps: list[Pair]) -> np.ndarray:
        return np.array([[np.log1p(len(p.chosen)) - np.log1p(len(p.rejected))] for p in ps])

    rows: list[tuple[str, np.ndarray]] = []
    t0 = time.perf_counter()
    rows.append(
        (
            "shipped v2 (gate, heads, length dropped)",
            margins(train_reward_model([], train, manifold, embedder, cfg).model, test),
        )
    )
    for kind in ("base", "last turn", "joint", "base+joint", "last turn+joint"):
        xtr, xte = diff(train, kind), diff(test, kind)
        for c in (0.1, 0.3):
            rows.append((f"{kind}, C={c}", bt_margins(xtr, xte, c)))
    xtr, xte = diff(train, "base"), diff(test, "base")
    rows.append(
        (
            "base + log length kept, C=0.1",
            bt_margins(np.hstack([xtr, loglen(train)]), np.hstack([xte, loglen(test)]), 0.1),
        )
    )
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=3, sublinear_tf=True, max_features=20000)
    vec.fit([p.chosen for p in train] + [p.rejected for p in train])

    def tfidf(ps: list[Pair]) -> sparse.csr_matrix:
        return vec.transform([p.chosen for p in ps]) - vec.transform([p.rejected for p in ps])

    for scale in (0.5, 1.0, 2.0):
        a = sparse.hstack([sparse.csr_matrix(xtr), tfidf(train) * scale]).tocsr()
        b = sparse.hstack([sparse.csr_matrix(xte), tfidf(test) * scale]).tocsr()
        clf = LogisticRegression(C=0.1, fit_intercept=False, max_iter=5000).fit(
            sparse.vstack([a, -a]), np.r_[np.ones(a.shape[0]), np.zeros(a.shape[0])]
        )
        rows.append((f"base + tf-idf x{scale}, C=0.1", np.asarray(b @ clf.coef_.ravel()).ravel()))
    xtr_c, xtr_r = feats(train, "chosen", "base"), feats(train, "rejected", "base")
    xte_c, xte_r = feats(test, "chosen", "base"), feats(test, "rejected", "base")
    for seed in range(3):
        rows.append(
            (f"base, MLP head (32 hidden), seed {seed}", mlp_margins(xtr_c, xtr_r, xte_c, xte_r, seed))
        )
    print(f"fitting every variant: {time.perf_counter() - t0:.1f} s\n")

    idx = {s: [i for i, p in enumerate(test) if p.source == s] for s in sources}
    print(f"{'variant':42s} {'overall':>19s}  " + "  ".join(f"{s[:17]:>19s}" for s in sources))
    print(f"{'(test pairs)':42s} {len(test):>19d}  " + "  ".join(f"{len(idx[s]):>19d}" for s in sources))
    for name, m in rows:
        print(f"{name[:42]:42s} {cell(m)}  " + "  ".join(cell(m[idx[s]]) for s in sources))
    best = max(rows, key=lambda r: accuracy(r[1])[0])
    print(f"\nbest overall: {best[0]} {accuracy(best[1])[0]:.3f}; goal (a) 0.70")

    # Learning curve: is it the data or the features? The shipped recipe on a share of the training
    # prompts (grouped, nested: each share holds the smaller ones), tested on the same test pairs.
    print("\nlearning curve, shipped v2 on a share of the training prompts (same test pairs):")
    order = sorted({content_hash(p.prompt) for p in train})
    rank = {g: i for i, g in enumerate(sorted(order, key=lambda g: content_hash(g, "curve")))}
    for share in (0.125, 0.25, 0.5, 1.0):
        keep = [p for p in train if rank[content_hash(p.prompt)] < share * len(order)]
        m = margins(train_reward_model([], keep, manifold, embedder, cfg).model, test)
        print(
            f"  {share:5.3f} of prompts, {len(keep):5d} pairs: overall {cell(m)}  "
            + f"{sources[0]} {cell(m[idx[sources[0]]])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The evaluation protocol the quality benches share (docs/design.md, "Evaluation"): the five
splits, the validation carve, training as ``rbm-reco train`` does, and validation numbers.

Splits (``SPLITS``): ``u1`` (MovieLens 100k's u1.base / u1.test), ``random`` (a per-user
random 80/20 of u.data, ``split_holdout`` seed 0), ``temporal`` (each user's last 20% of
u.data by timestamp, ``temporal_holdout``), and the same random and temporal splits of
ml-1m-dev (genuine ml-1m ratings of 1,499 users): ``1m-random``, ``1m-temporal``. Candidates
for a user are the catalogue movies (those in the training part) the user did not rate in
training; test pairs of other movies or users are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rbmcore import metrics
from rbmcore.data.csr import RatingsCSR, csr_from_pairs
from rbmcore.data.scale import STARS, RatingScale
from rbmcore.data.splits import bounded_evaluation, split_holdout, temporal_holdout
from rbmcore.evaluation import ranking_quality
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.scoring import predict_csr
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import trainer_for
from rbmcore.training.config import TrainConfig
from rbmcore.training.refit import refit_on_all_ratings

REPO = Path(__file__).resolve().parent.parent
DATA_100K = REPO.parent / "shared" / "data" / "ml-100k"
DATA_1M = REPO.parent / "shared" / "data" / "ml-1m-dev"
CPU = torch.device("cpu")
TEST_FRACTION = 0.2  # the random and temporal splits' test part
BATCH_USERS = 100  # ingest.batch_size
SPLITS = {  # key -> the split's name in the tables
    "u1": "u1",
    "random": "random 80/20 (u.data, seed 0)",
    "temporal": "temporal 80/20 (u.data, each user's last 20%)",
    "1m-random": "random 80/20 (ml-1m-dev, seed 0)",
    "1m-temporal": "temporal 80/20 (ml-1m-dev, each user's last 20%)",
}


@dataclass
class Split:
    """A train/test split in dense indices: train CSR (all train users), test CSR (test users,
    their catalogue items only) and the test users' train rows (the context)."""

    name: str
    train: RatingsCSR
    test: RatingsCSR
    context: RatingsCSR


def read_tab(path: Path) -> pd.DataFrame:
    """MovieLens 100k's tab-separated ratings (user, movie, rating, timestamp)."""
    return pd.read_csv(path, sep="\t", header=None, names=["u", "m", "r", "t"])


def read_dat(path: Path) -> pd.DataFrame:
    """MovieLens 1M's ``::``-separated ratings (user, movie, rating, timestamp)."""
    return pd.read_csv(path, sep="::", engine="python", header=None, names=["u", "m", "r", "t"])


def make_split(name: str, train_df: pd.DataFrame, test_df: pd.DataFrame) -> Split:
    movies = np.sort(train_df.m.unique())
    index = pd.Series(np.arange(len(movies)), index=movies)
    test_df = test_df[test_df.m.isin(movies) & test_df.u.isin(train_df.u.unique())]
    n = len(movies)
    train = csr_from_pairs(
        train_df.u.to_numpy(), index[train_df.m].to_numpy(), train_df.r.to_numpy(), n
    )
    test = csr_from_pairs(
        test_df.u.to_numpy(), index[test_df.m].to_numpy(), test_df.r.to_numpy(), n
    )
    context = train.take(np.searchsorted(train.user_ids, test.user_ids))
    return Split(name, train, test, context)


def random_split(name: str, full: pd.DataFrame) -> Split:
    """A per-user random 80/20 of ``full`` (``split_holdout``, seed 0)."""
    csr = csr_from_pairs(full.u.to_numpy(), full.m.to_numpy(), full.r.to_numpy(),
                         int(full.m.max()) + 1)  # fmt: skip
    keep, held = split_holdout(csr, TEST_FRACTION, np.random.default_rng(0))
    return make_split(name, to_df(keep), to_df(held))


def temporal_split(name: str, full: pd.DataFrame) -> Split:
    """Each user's last 20% of ``full`` by timestamp as the test (``temporal_holdout``)."""
    held = temporal_holdout(full.u.to_numpy(), full.t.to_numpy(), TEST_FRACTION)
    return make_split(name, full[~held], full[held])


def load_splits(keys: list[str], data: Path = DATA_100K, data_1m: Path = DATA_1M) -> list[Split]:
    """The splits ``keys`` (of ``SPLITS``) from the MovieLens 100k folder ``data`` (u1.base,
    u1.test, u.data) and the ml-1m-dev folder ``data_1m`` (ratings.dat)."""
    unknown = sorted(set(keys) - set(SPLITS))
    if unknown:
        raise SystemExit(f"unknown split(s) {', '.join(unknown)} (choose from {', '.join(SPLITS)})")
    out = []
    for key in keys:
        name = SPLITS[key]
        if key == "u1":
            out.append(make_split(name, read_tab(data / "u1.base"), read_tab(data / "u1.test")))
            continue
        full = read_tab(data / "u.data") if not key.startswith("1m-") else read_dat(
            data_1m / "ratings.dat"
        )
        out.append((temporal_split if key.endswith("temporal") else random_split)(name, full))
    return out


def to_df(csr: RatingsCSR) -> pd.DataFrame:
    return pd.DataFrame(
        {"u": np.repeat(csr.user_ids, csr.row_lengths()), "m": csr.items, "r": csr.ratings}
    )


def validation_carve(train: RatingsCSR, config: TrainConfig):
    """(fit part, validation (context, target), user batches) as ``rbm-reco train`` carves
    them: a per-user ``val_fraction`` holdout (seed ``config.seed``), shuffled batches of 100
    users, evaluation bounded to the first batches' users as the job bounds it."""
    fit_part, held = split_holdout(train, config.val_fraction, np.random.default_rng(config.seed))
    order = np.random.default_rng(config.seed).permutation(len(fit_part))
    batches = [order[s : s + BATCH_USERS] for s in range(0, len(order), BATCH_USERS)]
    fit_part, validation, _ = bounded_evaluation(fit_part, batches, (fit_part, held), None)
    return fit_part, validation, batches


def train_rbm(
    train: RatingsCSR, config: TrainConfig, device: torch.device = CPU, scale: RatingScale = STARS
):
    """What ``rbm-reco train`` does, in process: the validation carve (``validation_carve``),
    the kind's trainer with early stopping, then (``config.refit``) the retraining on all of
    ``train``, on ``device``; ``scale``: the ratings' (codes of it); returns (final model,
    selection trainer, refit trainer or None)."""
    fit_part, validation, batches = validation_carve(train, config)
    generator = torch.Generator().manual_seed(config.seed)
    model = model_for_config(config, train.n_items, generator, len(fit_part), scale)
    model.init_visible_biases(fit_part)
    trainer = trainer_for(model, config, device)
    trainer.fit(fit_part, batches, validation)
    if not config.refit:
        return trainer.model, trainer, None
    refit = refit_on_all_ratings(trainer, train, batches)
    return refit.model, trainer, refit


@torch.no_grad()
def validation_numbers(model: torch.nn.Module, fit_part: RatingsCSR, held: RatingsCSR):
    """Held-out numbers of ``model`` on the validation holdout ``held`` of the users' ``fit_part``
    rows: nDCG@10 and P@10 for models that rank (they output ``p_rated``), like NLL, like
    error, AUC (and RMSE) for models that predict likes (``p_like``; a hybrid: both).
    Two-way parts' item states are recomputed from ``fit_part`` first (the trainer's last
    step puts the holdout into them)."""
    for module in model.modules():
        if isinstance(module, TwoWayRBM):
            module.item.set_item_states(fit_part)
    out: dict[str, float] = {}
    if "p_rated" in model.output_columns:  # it answers "which movies"
        ranking = ranking_quality(model, fit_part, held, CPU)
        out.update(ndcg=ranking["ndcg"], precision=ranking["precision"])
    if "p_like" in model.output_columns:
        preds = predict_csr(model, fit_part, held, CPU)
        out.update(
            metrics.like_and_rating_metrics(
                held.row_of_entries(), held.ratings, preds["p_like"], preds.get("pred_rating")
            )
        )
    return out


def write_section(path: Path, section: str, heading: str, end: str) -> None:
    """Replace the part of the Markdown file ``path`` from the line ``heading`` to the marker
    ``end`` with ``section`` (which holds both), or append ``section`` when it is not there."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if heading in text:
        head, rest = text.split(heading, 1)
        tail = rest.split(end, 1)[1].lstrip("\n") if end in rest else ""
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)

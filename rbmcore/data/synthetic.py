"""Synthetic MovieLens-like ratings with planted tastes, deterministic by seed (pure numpy).

The generative story, per user ``u`` and movie ``i``:

- Movies get a Zipf-like popularity ``pop_i`` (random popularity rank per id) and belong to one
  or two of ``K`` taste clusters (``phi_i``, a row of weights summing to 1). Genres follow the
  clusters: each cluster has one or two characteristic MovieLens genres.
- Users get a taste ``theta_u ~ Dirichlet(taste_concentration * K * q)`` over the clusters
  (``q`` = the clusters' share of popularity, so the catalogue-wide marginal stays Zipf), mixed
  with a "mainstream" share: ``pi_u = (1 - mainstream) * theta_u + mainstream * q``.
- *Which* movies a user rates: ``k_u`` successive draws without replacement from
  ``p_u(i) = sum_c pi_uc * phi_ic * pop_i / P_c`` (pick a cluster by taste, then a movie in it
  by popularity). ``k_u >= min_ratings_per_user``, heavy tailed (lognormal), totals exact.
- *The rating*: ``latent = b_u + b_i + affinity_weight * z_u . z_i + noise`` with user/movie
  biases (movie bias correlated with popularity) and latent factors ``z`` built from the cluster
  centroids, so users rate movies of their favourite clusters higher. The latent is cut into
  1..5 at thresholds calibrated on the first block of users so that the shares match
  MovieLens 1M (5.6 / 10.8 / 26.1 / 34.9 / 22.6 %, mean 3.58), or, with ``half_stars``, into
  the ten half stars 0.5..5.0 with about MovieLens 25M's shares (``HALF_STAR_SHARES``).

``write_dataset`` writes the files in the shape of a MovieLens release (``FORMATS``): ``dat``
as 1M / 10M (``ratings.dat`` ``u::m::r::t``, ``movies.dat`` latin-1; half stars as ``3.5``,
whole ones as ``4``), ``tab`` as 100k (``u.data`` tab-separated, ``u.item`` ``|`` latin-1),
``csv`` as 20M / 25M / 32M (``ratings.csv`` with the header ``userId,movieId,rating,timestamp``,
ratings as ``4.0`` / ``3.5``; ``movies.csv`` UTF-8 with ``movieId,title,genres``, titles
quoted when they hold a comma or a quote), and ``parquet`` (``ratings.parquet`` with the CSV's
column names: int32 ids, float32 ratings, int64 timestamps; ``movies.csv``).

Users are generated in fixed blocks of ``BLOCK_USERS``, each with its own RNG stream derived from
``(seed, block)``, so the output does not depend on how the writer groups blocks. Draws without
replacement are vectorised: light users draw with replacement and keep the first ``k_u``
distinct movies (exactly successive sampling), heavy users (``k_u > n_movies / 16``) use
exponential-key (Gumbel-top-k) sampling on their dense weight row.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "BLOCK_USERS",
    "FORMATS",
    "GENRES",
    "HALF_STAR_SHARES",
    "PRESETS",
    "RATING_SHARES",
    "GeneratorSpec",
    "format_dat_lines",
    "format_lines",
    "generate_chunks",
    "holdout_mask",
    "movie_titles_and_genres",
    "write_dataset",
]

log = logging.getLogger("rbm-reco.generate")

PRESETS: dict[str, dict[str, int]] = {
    "ml-100k": {"users": 943, "movies": 1_682, "ratings": 100_000},
    "ml-1m": {"users": 6_040, "movies": 3_706, "ratings": 1_000_209},
    "ml-10m": {"users": 69_878, "movies": 10_677, "ratings": 10_000_054},
    "ml-25m": {"users": 162_541, "movies": 59_047, "ratings": 25_000_095},
}

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip

# Movies per genre in MovieLens 1M's movies.dat, in GENRES order: how often a genre is drawn.
_GENRE_WEIGHTS: tuple[int, ...] = (
    503, 283, 105, 251, 1200, 211, 127, 1603, 68, 44, 343, 114, 106, 471, 276, 492, 143, 68,
)  # fmt: skip

# Shares of ratings 1..5 in MovieLens 1M (mean 3.58).
RATING_SHARES: tuple[float, ...] = (0.0562, 0.1075, 0.2611, 0.3489, 0.2263)
# Shares of the half stars 0.5, 1.0, ..., 5.0, about MovieLens 25M's (mean 3.53).
HALF_STAR_SHARES: tuple[float, ...] = (
    0.016, 0.031, 0.016, 0.066, 0.050, 0.196, 0.126, 0.266, 0.088, 0.145,
)  # fmt: skip

# File names of each format: ratings, train, test, movies.
FORMATS: dict[str, tuple[str, str, str, str]] = {
    "dat": ("ratings.dat", "train.dat", "test.dat", "movies.dat"),
    "tab": ("u.data", "u.base", "u.test", "u.item"),
    "csv": ("ratings.csv", "train.csv", "test.csv", "movies.csv"),
    "parquet": ("ratings.parquet", "train.parquet", "test.parquet", "movies.csv"),
}
CSV_HEADER = b"userId,movieId,rating,timestamp\n"
MOVIES_CSV_HEADER = "movieId,title,genres\n"

BLOCK_USERS = 2048  # users per RNG block; fixed so output is independent of write chunking
_DENSE_RATIO = 16  # users with k_u > n_movies / _DENSE_RATIO are sampled densely
_DENSE_CELLS = 1 << 22  # dense weight-matrix cells per sub-batch (32 MiB in float64)
_MAX_ROUNDS = 6  # draw-with-replacement rounds before a light user falls back to dense
_LATIN1_WORDS = ("Café", "Amélie", "Señor", "Über Alles", "Misérables, Les", "Noël")

# Streams of SeedSequence([seed, stream, ...]).
_WORLD, _USERS, _HOLDOUT, _MOVIES = 0, 1, 2, 3


@dataclass(frozen=True)
class GeneratorSpec:
    """What to generate. Sizes are exact: the output has ``n_ratings`` rows.

    Fields after the sizes shape the data; the defaults give MovieLens-like statistics.
    """

    n_users: int
    n_movies: int
    n_ratings: int
    seed: int = 0
    n_clusters: int = 20  # planted taste clusters
    n_factors: int = 8  # dimension of the rating-affinity factors z
    taste_concentration: float = 0.08  # Dirichlet concentration per cluster (lower: pickier)
    mainstream: float = 0.15  # share of each user's draws that follow global popularity
    popularity_exponent: float = 1.3  # pop_i ~ (rank + popularity_offset) ** -exponent
    popularity_offset: float = 40.0
    activity_sigma: float = 1.2  # lognormal sigma of ratings per user above the minimum
    min_ratings_per_user: int = 20
    max_ratings_fraction: float = 0.6  # no user rates more than this share of the catalogue
    affinity_weight: float = 0.45  # std of the taste term in the rating latent
    user_bias_std: float = 0.45
    movie_bias_std: float = 0.45
    noise_std: float = 0.75
    test_fraction: float = 0.0  # per-user random holdout written to test.dat when > 0
    half_stars: bool = False  # ratings in half stars 0.5..5.0 (codes 1..10), else 1..5
    min_train_per_user: int = 15
    start_time: int = 956_703_932  # 2000-04-25, the first MovieLens 1M timestamp
    end_time: int = 1_046_454_590  # 2003-02-28, the last

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        if self.n_users < 1 or self.n_movies < 1:
            raise ValueError("n_users and n_movies must be at least 1")
        if not 1 <= self.min_ratings_per_user <= self.n_movies:
            raise ValueError(
                f"min_ratings_per_user must be in 1..n_movies ({self.n_movies}), "
                f"got {self.min_ratings_per_user}"
            )
        low = self.n_users * self.min_ratings_per_user
        high = self.n_users * self.max_ratings_per_user
        if not low <= self.n_ratings <= high:
            raise ValueError(
                f"n_ratings must be in {low:,}..{high:,} for {self.n_users:,} users x "
                f"{self.n_movies:,} movies (at least {self.min_ratings_per_user} and at most "
                f"{self.max_ratings_per_user} per user), got {self.n_ratings:,}"
            )
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.test_fraction > 0 and self.min_ratings_per_user < 2:
            raise ValueError("a test split needs min_ratings_per_user >= 2")
        if self.n_clusters < 1 or self.n_factors < 1:
            raise ValueError("n_clusters and n_factors must be at least 1")
        if not 0.0 <= self.mainstream <= 1.0:
            raise ValueError(f"mainstream must be in [0, 1], got {self.mainstream}")
        if self.taste_concentration <= 0 or self.popularity_exponent < 0:
            raise ValueError("taste_concentration must be > 0, popularity_exponent >= 0")
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")

    @property
    def max_ratings_per_user(self) -> int:
        cap = int(round(self.max_ratings_fraction * self.n_movies))
        return min(self.n_movies, max(self.min_ratings_per_user, cap))

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GeneratorSpec:
        """The spec of a named preset (``PRESETS``), fields in ``overrides`` replacing it."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        sizes = PRESETS[name]
        fields: dict[str, Any] = {
            "n_users": sizes["users"],
            "n_movies": sizes["movies"],
            "n_ratings": sizes["ratings"],
        }
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**fields)


def _rng(spec: GeneratorSpec, *stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([spec.seed, *stream])))


@dataclass
class _World:
    """Everything shared by all users. ``K`` = clusters in use, ``n`` = movies, ``d`` = factors."""

    pop: np.ndarray  # (n,) float64, sums to 1
    primary: np.ndarray  # (n,) int64 primary cluster
    phi: np.ndarray  # (n, K) float64 cluster weights, rows sum to 1 (1 or 2 non-zeros)
    q: np.ndarray  # (K,) cluster share of popularity
    cond: np.ndarray  # (K, n) p(movie | cluster) = phi * pop / P_c
    member_movie: np.ndarray  # (m,) movie of each (cluster, movie) membership, sorted by cluster
    member_cdf: np.ndarray  # (m,) c + within-cluster cumulative p(movie | c)
    cluster_lo: np.ndarray  # (K,) first membership of each cluster
    cluster_hi: np.ndarray  # (K,) one past the last
    centroids: np.ndarray  # (K, d) float64
    movie_z: np.ndarray  # (n, d) float32
    movie_bias: np.ndarray  # (n,) float32
    k: np.ndarray  # (n_users,) int64 ratings per user, sums to n_ratings


def _zipf_popularity(spec: GeneratorSpec, rng: np.random.Generator) -> np.ndarray:
    rank = rng.permutation(spec.n_movies).astype(np.float64)  # movie id order != popularity
    pop = (rank + 1.0 + spec.popularity_offset) ** -spec.popularity_exponent
    return pop / pop.sum()


def _activity(spec: GeneratorSpec, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user, shape (n_users,): min + lognormal extra, capped, summing exactly."""
    n, lo, hi = spec.n_users, spec.min_ratings_per_user, spec.max_ratings_per_user
    extra_total = spec.n_ratings - n * lo
    cap = float(hi - lo)
    raw = rng.lognormal(0.0, spec.activity_sigma, size=n)
    extra = np.zeros(n)
    free = np.ones(n, dtype=bool)
    for _ in range(100):  # water-filling: scale the uncapped users until the caps hold
        remaining = extra_total - extra[~free].sum()
        if not free.any() or remaining <= 0:
            break
        extra[free] = raw[free] / raw[free].sum() * remaining
        over = free & (extra > cap)
        if not over.any():
            break
        extra[over] = cap
        free &= ~over
    k = np.floor(extra).astype(np.int64)
    short = int(extra_total - k.sum())
    if short > 0:  # hand out the rounding remainder by largest fractional part, under the cap
        frac = np.where(k < cap, extra - k, -1.0)
        k[np.argsort(-frac, kind="stable")[:short]] += 1
    return k + lo


def _build_world(spec: GeneratorSpec) -> _World:
    rng = _rng(spec, _WORLD)
    n, d = spec.n_movies, spec.n_factors
    K = min(spec.n_clusters, n)
    pop = _zipf_popularity(spec, rng)

    sizes = rng.dirichlet(np.full(K, 3.0))
    primary = rng.choice(K, size=n, p=sizes)
    primary[rng.permutation(n)[:K]] = np.arange(K)  # no empty cluster
    phi = np.zeros((n, K))
    phi[np.arange(n), primary] = 1.0
    if K > 1:  # 40% of movies also belong to a second cluster
        two = np.flatnonzero(rng.random(n) < 0.4)
        second = (primary[two] + rng.integers(1, K, size=two.size)) % K
        phi[two, primary[two]] = 0.65
        phi[two, second] = 0.35

    mass = phi * pop[:, None]  # (n, K)
    P = mass.sum(axis=0)  # (K,)
    q = P / P.sum()
    cond = (mass / P).T.copy()  # (K, n)

    cl, mv = np.nonzero(phi.T)  # memberships sorted by cluster, then movie
    w = cond[cl, mv]
    cum = np.cumsum(w)
    lo = np.searchsorted(cl, np.arange(K), side="left")
    hi = np.searchsorted(cl, np.arange(K), side="right")
    base = np.concatenate([[0.0], cum])[lo]  # cumulative mass before each cluster
    member_cdf = cl + (cum - base[cl])  # in (c, c + 1]
    member_cdf[hi - 1] = np.arange(K) + 1.0

    centroids = rng.standard_normal((K, d))
    movie_z = phi @ centroids + 0.5 * rng.standard_normal((n, d))
    logpop = np.log(pop)
    z_pop = (logpop - logpop.mean()) / (logpop.std() + 1e-12)
    movie_bias = spec.movie_bias_std * (0.4 * z_pop + np.sqrt(1 - 0.4**2) * rng.standard_normal(n))

    return _World(
        pop=pop,
        primary=primary,
        phi=phi,
        q=q,
        cond=cond,
        member_movie=mv.astype(np.int64),
        member_cdf=member_cdf,
        cluster_lo=lo,
        cluster_hi=hi,
        centroids=centroids,
        movie_z=movie_z.astype(np.float32),
        movie_bias=movie_bias.astype(np.float32),
        k=_activity(spec, rng),
    )


def _draw(
    rng: np.random.Generator, world: _World, pi_cum: np.ndarray, users: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``m[j]`` draws with replacement for local user ``users[j]``; returns (user, movie) arrays."""
    K = pi_cum.shape[1]
    u = np.repeat(users, m)
    flat = (pi_cum[users] + np.arange(users.size)[:, None]).ravel()
    slot = np.repeat(np.arange(users.size), m)
    c = np.searchsorted(flat, slot + rng.random(u.size), side="right") - slot * K
    np.clip(c, 0, K - 1, out=c)
    idx = np.searchsorted(world.member_cdf, c + rng.random(u.size), side="right")
    np.clip(idx, world.cluster_lo[c], world.cluster_hi[c] - 1, out=idx)
    return u, world.member_movie[idx]


def _first_k_unique(
    u: np.ndarray, mv: np.ndarray, k: np.ndarray, n_movies: int, n_local: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user, the first ``k[user]`` distinct movies in draw order.

    Returns (user, movie) of the kept draws, grouped by user in draw order, and the number of
    distinct movies each local user drew, shape (n_local,).
    """
    _, first = np.unique(u * n_movies + mv, return_index=True)
    fu = u[first]
    order = np.lexsort((first, fu))
    first, fu = first[order], fu[order]
    counts = np.bincount(fu, minlength=n_local)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(fu.size) - starts[fu]
    keep = rank < k[fu]
    return fu[keep], mv[first[keep]], counts


def _sample_light(
    rng: np.random.Generator, world: _World, pi_cum: np.ndarray, users: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Successive sampling without replacement by drawing with replacement, skipping repeats.

    Returns (user, movie) of the finished users and the local users still short after
    ``_MAX_ROUNDS`` rounds (for the dense sampler).
    """
    n_movies, n_local = world.pop.size, k.size
    done_u: list[np.ndarray] = [np.empty(0, np.int64)]
    done_m: list[np.ndarray] = [np.empty(0, np.int64)]
    if users.size == 0:
        return done_u[0], done_m[0], users
    pend_u = np.empty(0, np.int64)
    pend_m = np.empty(0, np.int64)
    active, missing = users, k[users]
    for r in range(_MAX_ROUNDS):
        m = np.ceil(missing * (1.3 * 2**r)).astype(np.int64) + 4
        du, dm = _draw(rng, world, pi_cum, active, m)
        cu, cm = np.concatenate([pend_u, du]), np.concatenate([pend_m, dm])
        su, sm, counts = _first_k_unique(cu, cm, k, n_movies, n_local)
        ok_user = counts >= k
        keep = ok_user[su]
        done_u.append(su[keep])
        done_m.append(sm[keep])
        active = active[~ok_user[active]]
        if active.size == 0:
            break
        missing = k[active] - counts[active]
        pending = ~ok_user[cu]
        pend_u, pend_m = cu[pending], cm[pending]
    return np.concatenate(done_u), np.concatenate(done_m), active


def _sample_dense(
    rng: np.random.Generator, world: _World, pi: np.ndarray, users: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact successive sampling by exponential keys ``E / w`` (Gumbel-top-k), sub-batched."""
    n_movies = world.pop.size
    step = max(1, _DENSE_CELLS // n_movies)
    out_u: list[np.ndarray] = [np.empty(0, np.int64)]
    out_m: list[np.ndarray] = [np.empty(0, np.int64)]
    for s in range(0, users.size, step):
        us = users[s : s + step]
        w = pi[us] @ world.cond  # (b, n_movies), all > 0 when mainstream > 0
        keys = rng.standard_exponential(w.shape) / w
        order = np.argsort(keys, axis=1)
        take = np.arange(n_movies) < k[us][:, None]
        out_u.append(np.repeat(us, k[us]))
        out_m.append(order[take])
    return np.concatenate(out_u), np.concatenate(out_m)


@dataclass
class _Calibration:
    """Fixed from the first block: affinity standardisation and the rating cut points."""

    aff_mean: float
    aff_std: float
    cuts: np.ndarray


def _block(
    spec: GeneratorSpec, world: _World, b: int, calib: _Calibration | None
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], _Calibration]:
    """Rows of users ``b * BLOCK_USERS ...``: 1-based ids, rating codes (1..5, or 1..10 for
    half stars), timestamps."""
    rng = _rng(spec, _USERS, b)
    u0 = b * BLOCK_USERS
    k = world.k[u0 : u0 + BLOCK_USERS]
    n_local, K = k.size, world.q.size

    alpha = np.maximum(spec.taste_concentration * K * world.q, 1e-3)
    g = rng.standard_gamma(alpha, size=(n_local, K)) + 1e-300
    theta = g / g.sum(axis=1, keepdims=True)
    pi = (1.0 - spec.mainstream) * theta + spec.mainstream * world.q
    pi_cum = np.cumsum(pi, axis=1)
    pi_cum[:, -1] = 1.0

    heavy = k * _DENSE_RATIO > world.pop.size
    lu, lm, short = _sample_light(rng, world, pi_cum, np.flatnonzero(~heavy), k)
    dense_users = np.concatenate([np.flatnonzero(heavy), short])
    hu, hm = _sample_dense(rng, world, pi, dense_users, k)
    u, mv = np.concatenate([lu, hu]), np.concatenate([lm, hm])

    # Rating value: biases + taste affinity + noise, cut into the scale's levels.
    d = spec.n_factors
    user_z = theta @ world.centroids + 0.5 * rng.standard_normal((n_local, d))
    user_z = user_z.astype(np.float32)
    aff = np.zeros(u.size, dtype=np.float32)
    for f in range(d):
        aff += user_z[u, f] * world.movie_z[mv, f]
    user_bias = (spec.user_bias_std * rng.standard_normal(n_local)).astype(np.float32)
    noise = rng.standard_normal(u.size, dtype=np.float32)
    aff_mean, aff_std = (
        (float(aff.mean()), float(aff.std()) + 1e-12) if calib is None
        else (calib.aff_mean, calib.aff_std)
    )  # fmt: skip
    latent = (
        user_bias[u]
        + world.movie_bias[mv]
        + spec.affinity_weight * (aff - aff_mean) / aff_std
        + spec.noise_std * noise
    )
    if calib is None:
        shares = HALF_STAR_SHARES if spec.half_stars else RATING_SHARES
        cuts = np.quantile(latent, np.cumsum(shares)[:-1])
        calib = _Calibration(aff_mean, aff_std, cuts)
    rating = (np.searchsorted(calib.cuts, latent) + 1).astype(np.int8)

    # Timestamps: a start per user (most early on), a lognormal active span, sorted per user.
    t0, t1 = float(spec.start_time), float(spec.end_time)
    start = t0 + (t1 - t0) * rng.beta(0.6, 6.0, size=n_local)
    span = np.minimum(np.exp(rng.normal(np.log(3 * 86400.0), 2.5, size=n_local)), t1 - start)
    ts = (start[u] + span[u] * rng.random(u.size)).astype(np.int64)

    order = np.lexsort((ts, u))
    rows = (
        (u[order] + u0 + 1).astype(np.int64),
        (mv[order] + 1).astype(np.int64),
        rating[order],
        ts[order],
    )
    return rows, calib


def generate_chunks(
    spec: GeneratorSpec,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield the dataset block by block (``BLOCK_USERS`` users each, in user order).

    Each item is ``(user_ids, movie_ids, ratings, timestamps)``, all shape (rows,): int64 1-based
    ids, int8 rating codes (1..5; half stars 1..10 for 0.5..5.0), int64 seconds; rows grouped
    by user, timestamps non-decreasing per user. Concatenated, the blocks hold exactly
    ``spec.n_ratings`` rows.
    """
    world = _build_world(spec)
    calib: _Calibration | None = None
    for b in range((spec.n_users + BLOCK_USERS - 1) // BLOCK_USERS):
        rows, calib = _block(spec, world, b, calib)
        yield rows


def holdout_mask(spec: GeneratorSpec, block: int, user_ids: np.ndarray) -> np.ndarray:
    """Which rows of block ``block`` go to test: a per-user random holdout, shape (rows,) bool.

    Each user gets ``max(1, round(test_fraction * k))`` test rows, keeping at least
    ``min_train_per_user`` (but at least one) in train. Independent of the rating stream.
    """
    if spec.test_fraction <= 0 or user_ids.size == 0:
        return np.zeros(user_ids.size, dtype=bool)
    rng = _rng(spec, _HOLDOUT, block)
    local = user_ids - user_ids.min()
    k = np.bincount(local)
    n_test = np.maximum(1, np.rint(spec.test_fraction * k).astype(np.int64))
    n_test = np.minimum(n_test, np.maximum(1, k - spec.min_train_per_user))
    n_test = np.minimum(n_test, np.maximum(k - 1, 0))
    order = np.lexsort((rng.random(local.size), local))
    starts = np.concatenate([[0], np.cumsum(k)[:-1]])
    rank = np.empty(local.size, dtype=np.int64)
    rank[order] = np.arange(local.size) - starts[local[order]]
    return rank < n_test[local]


def movie_titles_and_genres(spec: GeneratorSpec) -> tuple[list[str], list[str]]:
    """Titles ("Synthetic Movie 17 (1994)", a few with latin-1 words) and '|'-joined genres.

    Genres follow the movie's clusters: each cluster has one or two characteristic genres;
    movies sometimes get an extra random one. Index ``i`` is movie id ``i + 1``.
    """
    world = _build_world(spec)
    rng = _rng(spec, _MOVIES)
    n, K, G = spec.n_movies, world.q.size, len(GENRES)
    freq = np.array(_GENRE_WEIGHTS, dtype=np.float64) / sum(_GENRE_WEIGHTS)
    cluster_genres = [
        sorted({int(x) for x in rng.choice(G, size=rng.integers(1, 3), replace=False, p=freq)})
        for _ in range(K)
    ]
    years = np.clip(np.rint(2000 - rng.exponential(9.0, size=n)), 1919, 2000).astype(int)
    extra = np.where(rng.random(n) < 0.25, rng.choice(G, size=n, p=freq), -1)
    accent = rng.random(n) < 0.02
    word = rng.integers(0, len(_LATIN1_WORDS), size=n)
    titles: list[str] = []
    genres: list[str] = []
    for i in range(n):
        gset = set(cluster_genres[world.primary[i]])
        second = np.flatnonzero(world.phi[i])
        if second.size > 1:
            gset.add(cluster_genres[int(second[np.argmin(world.phi[i, second])])][0])
        if extra[i] >= 0:
            gset.add(int(extra[i]))
        name = f"Synthetic Movie {i + 1}"
        if accent[i]:
            name += f": {_LATIN1_WORDS[word[i]]}"
        titles.append(f"{name} ({years[i]})")
        genres.append("|".join(GENRES[g] for g in sorted(gset)))
    return titles, genres


def format_dat_lines(columns: list[np.ndarray]) -> bytes:
    """Non-negative integer columns, each shape (rows,), as ``a::b::c\\n`` lines (ASCII bytes)."""
    return format_lines(columns, b"::")


def format_lines(columns: list, sep: bytes) -> bytes:
    """Columns, each shape (rows,), as ``sep``-separated lines (ASCII bytes). A column is a
    non-negative integer array (written in decimal) or ``(codes, texts)``: code c written as
    ``texts[c]`` (bytes without NUL).

    Vectorised: each column goes into a fixed-width uint8 matrix whose pad bytes (0, which
    replace leading zeros and fill short texts) are dropped at the end.
    """
    rows = (columns[0][0] if isinstance(columns[0], tuple) else columns[0]).size
    if rows == 0:
        return b""
    parts: list[np.ndarray] = []
    for j, col in enumerate(columns):
        parts.append(_text_matrix(*col) if isinstance(col, tuple) else _digit_matrix(col))
        end = b"\n" if j == len(columns) - 1 else sep
        parts.append(np.broadcast_to(np.frombuffer(end, dtype=np.uint8), (rows, len(end))))
    block = np.hstack(parts)
    return block[block != 0].tobytes()


def _digit_matrix(col: np.ndarray) -> np.ndarray:
    """(rows, width) uint8: the decimal digits of ``col``, leading zeros as pad bytes."""
    col = col.astype(np.int64, copy=False)
    if col.min() < 0:
        raise ValueError("format_lines writes non-negative integers only")
    width = max(1, len(str(int(col.max()))))
    digits = np.empty((col.size, width), dtype=np.uint8)
    rest = col.copy()
    for p in range(width - 1, -1, -1):
        digits[:, p] = rest % 10 + 48
        rest //= 10
    if width > 1:  # pad bytes (0) replace leading zeros, the last digit always stays
        power = 10 ** np.arange(width - 1, 0, -1, dtype=np.int64)
        digits[:, : width - 1][col[:, None] < power[None, :]] = 0
    return digits


def _text_matrix(codes: np.ndarray, texts: list[bytes]) -> np.ndarray:
    """(rows, width) uint8: ``texts[code]`` of each code, right-padded with pad bytes."""
    width = max(len(t) for t in texts)
    table = np.zeros((len(texts), width), dtype=np.uint8)
    for i, text in enumerate(texts):
        table[i, : len(text)] = np.frombuffer(text, dtype=np.uint8)
    return table[np.asarray(codes, dtype=np.int64)]


def rating_texts(half_stars: bool, fmt: str) -> list[bytes]:
    """The text of each rating code (index 0 unused): ``4`` / ``3.5`` in ``dat`` and ``tab``
    files, ``4.0`` / ``3.5`` in ``csv`` files (as MovieLens writes them)."""
    values = [c / 2 if half_stars else float(c) for c in range(11 if half_stars else 6)]
    if fmt == "csv":
        return [f"{v:.1f}".encode() for v in values]
    return [(f"{v:g}").encode() for v in values]


def _write_movies(spec: GeneratorSpec, path: Path, fmt: str) -> None:
    """``movies.dat`` (latin-1 ``::``), ``u.item`` (latin-1 ``|``, 100k's 24 fields) or
    ``movies.csv`` (UTF-8, header, titles quoted when they hold a comma or a quote)."""
    titles, genres = movie_titles_and_genres(spec)
    pairs = enumerate(zip(titles, genres, strict=True))
    if fmt == "dat":
        text, encoding = "".join(f"{i + 1}::{t}::{g}\n" for i, (t, g) in pairs), "latin-1"
    elif fmt == "tab":
        flags = ["|".join("1" if name in g.split("|") else "0" for name in ("unknown", *GENRES))
                 for g in genres]  # fmt: skip
        text = "".join(
            f"{i + 1}|{t}|01-Jan-{t[-5:-1]}||http://example.org/{i + 1}|{flags[i]}\n"
            for i, (t, _) in pairs
        )
        encoding = "latin-1"
    else:
        text = MOVIES_CSV_HEADER + "".join(f"{i + 1},{csv_quote(t)},{g}\n" for i, (t, g) in pairs)
        encoding = "utf-8"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(text.encode(encoding))
    os.replace(tmp, path)


def csv_quote(text: str) -> str:
    """A CSV field: quoted (quotes doubled) when it holds a comma or a quote."""
    if "," in text or '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def write_dataset(
    spec: GeneratorSpec, out_dir: str, chunk_users: int = 16_384, fmt: str = "dat"
) -> dict[str, Any]:
    """Write the ratings, the movies and, when ``spec.test_fraction > 0``, the train and test
    splits in the shape of ``fmt`` (``FORMATS``: ``ratings.dat``, ``movies.dat``,
    ``train.dat``, ``test.dat`` for ``dat``), and ``generate_summary.json``, under ``out_dir``
    (a local path).

    Files are written to ``*.tmp`` and renamed, so a re-run replaces them whole. The bytes
    depend only on ``spec`` and ``fmt`` (not on ``chunk_users``, which only sets how much is
    formatted at once). Returns the summary dict.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ratings, train, test, movies = FORMATS[fmt]
    names = [ratings] + ([train, test] if spec.test_fraction > 0 else [])
    tally = _write_rating_files(spec, out, names, chunk_users, started, fmt)
    _write_movies(spec, out / movies, "csv" if fmt == "parquet" else fmt)
    mean = tally.mean_rating(0.5 if spec.half_stars else 1.0)
    summary = _summary(spec, tally, mean, sorted(names + [movies]), started)
    summary["format"] = fmt
    (out / "generate_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info(
        "wrote %s: %d users, %d movies, %d ratings, mean %.3f in %.1f s",
        out, spec.n_users, spec.n_movies, tally.n_rows, mean, summary["seconds"],
    )  # fmt: skip
    return summary


@dataclass
class _Tally:
    """Running totals of the generated rows, for the summary."""

    rating_counts: np.ndarray  # (levels + 1,) rows per rating code (index 0 unused)
    movie_counts: np.ndarray  # (n_movies + 1,) rows per movie id (index 0 unused)
    n_rows: int = 0
    n_test: int = 0
    t_min: int = np.iinfo(np.int64).max
    t_max: int = 0

    def add(self, u: np.ndarray, m: np.ndarray, r: np.ndarray, t: np.ndarray) -> None:
        """Count one block's rows (user ids, movie ids, rating codes, timestamps)."""
        self.rating_counts += np.bincount(r, minlength=self.rating_counts.size)
        self.movie_counts += np.bincount(m, minlength=self.movie_counts.size)
        self.n_rows += u.size
        self.t_min, self.t_max = min(self.t_min, int(t.min())), max(self.t_max, int(t.max()))

    def mean_rating(self, step: float = 1.0) -> float:
        """The mean rating, for codes worth ``step`` each (0.5 for half stars)."""
        values = np.arange(self.rating_counts.size) * step
        return float((self.rating_counts * values).sum() / max(self.n_rows, 1))


def _write_rating_files(
    spec: GeneratorSpec, out: Path, names: list[str], chunk_users: int, started: float,
    fmt: str = "dat",
) -> _Tally:  # fmt: skip
    """Generate the ratings into the files ``names`` (ratings[, train, test]) under ``out``:
    each written to ``*.tmp``, renamed when all are complete, removed when generation fails."""
    tmps = {name: out / (name + ".tmp") for name in names}
    writer = _parquet_writers if fmt == "parquet" else _text_writers
    handles = writer(spec, tmps, fmt)
    try:
        tally = _stream_blocks(spec, handles, chunk_users, started)
    except BaseException:
        handles.close()
        for name in names:
            tmps[name].unlink(missing_ok=True)
        raise
    handles.close()
    for name in names:
        os.replace(tmps[name], out / name)
    return tally


def _stream_blocks(
    spec: GeneratorSpec, handles: dict[str, Any], chunk_users: int, started: float
) -> _Tally:
    """Generate every block into ``handles``, formatting about ``chunk_users`` users at once."""
    levels = 10 if spec.half_stars else 5
    tally = _Tally(
        np.zeros(levels + 1, dtype=np.int64), np.zeros(spec.n_movies + 1, dtype=np.int64)
    )
    blocks_per_chunk = max(1, chunk_users // BLOCK_USERS)
    pending: list[tuple[np.ndarray, ...]] = []
    for b, (u, m, r, t) in enumerate(generate_chunks(spec)):
        pending.append((u, m, r, t, holdout_mask(spec, b, u)))
        tally.add(u, m, r, t)
        if len(pending) >= blocks_per_chunk:
            tally.n_test += _write_blocks(handles, pending, spec.test_fraction > 0)
            log.info(
                "generated %d/%d users, %d ratings (%.1f s)",
                min((b + 1) * BLOCK_USERS, spec.n_users),
                spec.n_users,
                tally.n_rows,
                time.perf_counter() - started,
            )
    if pending:
        tally.n_test += _write_blocks(handles, pending, spec.test_fraction > 0)
    return tally


def _write_blocks(
    handles: dict[str, Any], pending: list[tuple[np.ndarray, ...]], with_test: bool
) -> int:
    """Write the ``pending`` blocks (user, movie, rating, timestamp, holdout mask) to the
    ratings file and, ``with_test``, to the train and test files (``handles`` in that order:
    each a function of the four columns), and empty ``pending``; returns the number of test
    rows written."""
    cols = [np.concatenate([p[j] for p in pending]) for j in range(5)]
    pending.clear()
    write = list(handles.values())
    write[0](cols[:4])
    if not with_test:
        return 0
    test = cols[4]
    write[1]([c[~test] for c in cols[:4]])
    write[2]([c[test] for c in cols[:4]])
    return int(test.sum())


class _Writers(dict):
    """name -> a function writing (user, movie, rating code, timestamp) columns to that file;
    ``close()`` closes every file."""

    def __init__(self, writers: dict[str, Any], closers: list[Any]) -> None:
        super().__init__(writers)
        self.closers = closers

    def close(self) -> None:
        for close in self.closers:
            close()


def _text_writers(spec: GeneratorSpec, tmps: dict[str, Path], fmt: str) -> _Writers:
    """Text files of ``fmt`` (``::``, tab or CSV with its header)."""
    sep = {"dat": b"::", "tab": b"\t", "csv": b","}[fmt]
    texts = rating_texts(spec.half_stars, fmt)
    files = {name: path.open("wb") for name, path in tmps.items()}

    def writer(fh: BinaryIO):
        if fmt == "csv":
            fh.write(CSV_HEADER)
        return lambda cols: fh.write(format_lines([cols[0], cols[1], (cols[2], texts), cols[3]],
                                                  sep))  # fmt: skip

    return _Writers({n: writer(fh) for n, fh in files.items()}, [fh.close for fh in files.values()])


def _parquet_writers(spec: GeneratorSpec, tmps: dict[str, Path], fmt: str) -> _Writers:
    """Parquet files with the CSV's column names (int32 ids, float32 ratings, int64 seconds)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("userId", pa.int32()), ("movieId", pa.int32()),
                        ("rating", pa.float32()), ("timestamp", pa.int64())])  # fmt: skip
    step = 0.5 if spec.half_stars else 1.0
    files = {name: pq.ParquetWriter(str(path), schema) for name, path in tmps.items()}

    def writer(pw):
        def write(cols):
            arrays = [cols[0].astype(np.int32), cols[1].astype(np.int32),
                      (cols[2] * step).astype(np.float32), cols[3].astype(np.int64)]  # fmt: skip
            pw.write_table(pa.Table.from_arrays(arrays, schema=schema))

        return write

    return _Writers({n: writer(pw) for n, pw in files.items()}, [pw.close for pw in files.values()])


def _summary(
    spec: GeneratorSpec, tally: _Tally, mean: float, files: list[str], started: float
) -> dict[str, Any]:
    """The contents of ``generate_summary.json``."""
    return {
        "n_users": spec.n_users,
        "n_movies": spec.n_movies,
        "n_ratings": tally.n_rows,
        "n_movies_rated": int((tally.movie_counts[1:] > 0).sum()),
        "n_train": tally.n_rows - tally.n_test,
        "n_test": tally.n_test,
        "seed": spec.seed,
        "mean_rating": round(mean, 4),
        "rating_counts": {
            f"{v * (0.5 if spec.half_stars else 1):g}": int(tally.rating_counts[v])
            for v in range(1, tally.rating_counts.size)
        },
        "timestamp_min": tally.t_min,
        "timestamp_max": tally.t_max,
        "files": files,
        "seconds": round(time.perf_counter() - started, 2),
        "spec": asdict(spec),
    }

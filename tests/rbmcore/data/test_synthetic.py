"""The synthetic MovieLens-like generator (rbmcore/data/synthetic.py): shape, statistics,
planted structure and the files it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rbmcore.data import synthetic as generate
from rbmcore.data.synthetic import (
    GENRES,
    PRESETS,
    GeneratorSpec,
    format_dat_lines,
    generate_chunks,
    movie_titles_and_genres,
    write_dataset,
)

# ML-1m-like density (5%) and ratings per user (60), small enough to check in a second.
MID = GeneratorSpec(n_users=2000, n_movies=1200, n_ratings=120_000, seed=0)
SMALL = GeneratorSpec(n_users=300, n_movies=200, n_ratings=12_000, seed=3)


def _concat(spec: GeneratorSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    parts = list(generate_chunks(spec))
    u, m, r, t = (np.concatenate([p[j] for p in parts]) for j in range(4))
    return u, m, r, t


def _read_dat(path: Path) -> np.ndarray:
    """(rows, 4) int64 from a ``a::b::c::d`` file."""
    text = path.read_text(encoding="ascii").replace("::", " ")
    return np.array(text.split(), dtype=np.int64).reshape(-1, 4)


@pytest.fixture(scope="module")
def mid() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _concat(MID)


def test_presets_and_overrides() -> None:
    assert PRESETS["ml-1m"] == {"users": 6040, "movies": 3706, "ratings": 1_000_209}
    assert PRESETS["ml-10m"] == {"users": 69_878, "movies": 10_677, "ratings": 10_000_054}
    assert PRESETS["ml-25m"] == {"users": 162_541, "movies": 59_047, "ratings": 25_000_095}
    spec = GeneratorSpec.from_preset("ml-1m", n_ratings=500_000, n_users=None, seed=7)
    assert (spec.n_users, spec.n_movies, spec.n_ratings, spec.seed) == (6040, 3706, 500_000, 7)
    with pytest.raises(ValueError, match="unknown preset"):
        GeneratorSpec.from_preset("ml-2m")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_ratings": 100 * 19}, "n_ratings must be in"),  # fewer than 20 per user
        ({"n_ratings": 100 * 31}, "n_ratings must be in"),  # more than 60% of 50 movies each
        ({"n_ratings": 2500, "test_fraction": 1.0}, "test_fraction"),
        ({"n_ratings": 2500, "min_ratings_per_user": 60}, "min_ratings_per_user"),
    ],
)
def test_spec_rejects_impossible_sizes(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorSpec(n_users=100, n_movies=50, **kwargs)


def test_exact_totals_ids_and_minimum_per_user(mid) -> None:
    u, m, r, t = mid
    assert u.size == MID.n_ratings
    assert u.min() == 1 and u.max() == MID.n_users
    assert m.min() >= 1 and m.max() <= MID.n_movies
    per_user = np.bincount(u, minlength=MID.n_users + 1)[1:]
    assert per_user.min() >= 20
    assert per_user.max() <= MID.max_ratings_per_user
    # heavy-tailed activity, mean = ratings / users
    assert per_user.max() > 5 * np.median(per_user)
    assert np.median(per_user) < per_user.mean() == MID.n_ratings / MID.n_users


def test_no_duplicate_pairs(mid) -> None:
    u, m, _, _ = mid
    assert np.unique(u * (MID.n_movies + 1) + m).size == u.size


def test_ratings_are_1_to_5_with_movielens_like_distribution(mid) -> None:
    _, _, r, _ = mid
    assert r.min() >= 1 and r.max() <= 5
    assert abs(r.mean() - 3.6) < 0.15
    share = np.bincount(r, minlength=6)[1:] / r.size
    assert share[2] + share[3] > 0.5  # most ratings are 3 or 4
    assert share[0] < share[1] < share[2] < share[3]  # fewer 1s than 2s than 3s than 4s
    assert share[4] > share[1]


def test_rows_grouped_by_user_with_increasing_timestamps(mid) -> None:
    u, _, _, t = mid
    assert t.dtype.kind == "i"
    assert np.all(np.diff(u) >= 0)
    same = u[1:] == u[:-1]
    assert np.all(t[1:][same] >= t[:-1][same])
    assert MID.start_time <= t.min() and t.max() <= MID.end_time


def test_movie_popularity_is_zipf_like(mid) -> None:
    _, m, _, _ = mid
    counts = np.sort(np.bincount(m, minlength=MID.n_movies + 1)[1:])[::-1]
    top10 = counts[: MID.n_movies // 10].sum() / counts.sum()
    assert top10 > 0.35
    assert counts[0] > 5 * np.median(counts)


def _precision_at_10(scores: np.ndarray, seen: np.ndarray, test: np.ndarray) -> float:
    scores = np.where(seen, -np.inf, scores)
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    return float(test[np.arange(test.shape[0])[:, None], top].mean())


def test_planted_tastes_beat_popularity(mid) -> None:
    """Item-item co-occurrence learns the planted tastes; most-popular-unseen cannot."""
    u, m, _, _ = mid
    rng = np.random.default_rng(0)
    held = rng.random(u.size) < 0.2
    train = np.zeros((MID.n_users, MID.n_movies), dtype=np.float32)
    train[u[~held] - 1, m[~held] - 1] = 1.0
    test = np.zeros((MID.n_users, MID.n_movies), dtype=bool)
    test[u[held] - 1, m[held] - 1] = True
    seen = train > 0
    popularity = train.sum(axis=0)
    norm = np.sqrt(np.maximum(popularity, 1.0))
    cooc = train.T @ train
    np.fill_diagonal(cooc, 0.0)
    item_item = train @ (cooc / norm[:, None] / norm[None, :])

    p_pop = _precision_at_10(np.broadcast_to(popularity, seen.shape), seen, test)
    p_cooc = _precision_at_10(item_item, seen, test)
    assert p_pop > 0.03  # popularity is a real baseline, not noise
    assert p_cooc >= 1.3 * p_pop, (p_cooc, p_pop)


def test_genres_follow_co_rating(mid) -> None:
    """Movies rated by the same users share genres more often than random pairs do."""
    u, m, _, _ = mid
    _, genres = movie_titles_and_genres(MID)
    G = np.array([[g in set(gs.split("|")) for g in GENRES] for gs in genres], dtype=np.float32)
    X = np.zeros((MID.n_users, MID.n_movies), dtype=np.float32)
    X[u - 1, m - 1] = 1.0
    pop = X.sum(axis=0)
    sim = (X.T @ X) / np.sqrt(np.outer(pop, pop) + 1e-9)
    np.fill_diagonal(sim, -1.0)
    nearest = np.argmax(sim, axis=1)
    overlap = (G * G[nearest]).sum(axis=1) > 0
    random_pairs = (G * G[np.random.default_rng(1).permutation(MID.n_movies)]).sum(axis=1) > 0
    assert overlap.mean() > random_pairs.mean() + 0.2


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(generate, "BLOCK_USERS", 64)  # several RNG blocks, several write chunks
    spec = GeneratorSpec(n_users=300, n_movies=200, n_ratings=12_000, seed=5, test_fraction=0.2)
    write_dataset(spec, str(tmp_path / "a"), chunk_users=64)
    write_dataset(spec, str(tmp_path / "b"), chunk_users=10_000)
    for name in ("ratings.dat", "train.dat", "test.dat", "movies.dat"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    other = GeneratorSpec(n_users=300, n_movies=200, n_ratings=12_000, seed=6, test_fraction=0.2)
    write_dataset(other, str(tmp_path / "c"))
    ratings_a = (tmp_path / "a" / "ratings.dat").read_bytes()
    assert ratings_a != (tmp_path / "c" / "ratings.dat").read_bytes()


def test_generate_chunks_matches_written_file(tmp_path: Path) -> None:
    summary = write_dataset(SMALL, str(tmp_path))
    rows = _read_dat(tmp_path / "ratings.dat")
    expected = np.stack([c.astype(np.int64) for c in _concat(SMALL)], axis=1)
    np.testing.assert_array_equal(rows, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "generate_summary.json",
        "movies.dat",
        "ratings.dat",
    ]
    on_disk = json.loads((tmp_path / "generate_summary.json").read_text())
    assert on_disk["n_ratings"] == summary["n_ratings"] == SMALL.n_ratings
    assert on_disk["seed"] == SMALL.seed and on_disk["n_users"] == SMALL.n_users
    assert on_disk["mean_rating"] == pytest.approx(rows[:, 2].mean(), abs=1e-4)
    assert sum(on_disk["rating_counts"].values()) == SMALL.n_ratings
    assert on_disk["seconds"] >= 0


def test_test_split_is_a_per_user_holdout(tmp_path: Path) -> None:
    spec = GeneratorSpec(n_users=300, n_movies=200, n_ratings=12_000, seed=3, test_fraction=0.2)
    summary = write_dataset(spec, str(tmp_path))
    ratings = _read_dat(tmp_path / "ratings.dat")
    train = _read_dat(tmp_path / "train.dat")
    test = _read_dat(tmp_path / "test.dat")
    # ratings.dat does not depend on the split, and is exactly train + test
    np.testing.assert_array_equal(ratings, _read_dat(_written(SMALL, tmp_path / "nosplit")))
    both = np.concatenate([train, test])
    np.testing.assert_array_equal(
        both[np.lexsort(both.T[::-1])], ratings[np.lexsort(ratings.T[::-1])]
    )
    n_train = np.bincount(train[:, 0], minlength=spec.n_users + 1)[1:]
    n_test = np.bincount(test[:, 0], minlength=spec.n_users + 1)[1:]
    assert n_test.min() >= 1 and n_train.min() >= 15
    assert abs(test.shape[0] / ratings.shape[0] - 0.2) < 0.02
    assert summary["n_test"] == test.shape[0] and summary["n_train"] == train.shape[0]


def _written(spec: GeneratorSpec, out: Path) -> Path:
    write_dataset(spec, str(out))
    return out / "ratings.dat"


def test_movies_dat_is_latin1_with_three_fields(tmp_path: Path) -> None:
    write_dataset(MID, str(tmp_path))
    raw = (tmp_path / "movies.dat").read_bytes()
    lines = raw.decode("latin-1").splitlines()
    assert len(lines) == MID.n_movies
    fields = [line.split("::") for line in lines]
    assert all(len(f) == 3 for f in fields)
    assert [int(f[0]) for f in fields] == list(range(1, MID.n_movies + 1))
    assert fields[16][1].startswith(("Synthetic Movie 17 (", "Synthetic Movie 17: "))
    assert all(f[1][-7:-5] == " (" and f[1][-5:-1].isdigit() and f[1][-1] == ")" for f in fields)
    assert all(f[2] and set(f[2].split("|")) <= set(GENRES) for f in fields)
    assert any(ord(ch) > 127 for ch in raw.decode("latin-1"))  # latin-1 matters
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_format_dat_lines_matches_python_formatting() -> None:
    cols = [
        np.array([0, 9, 10, 99, 100, 162541]),
        np.array([1, 59047, 3, 1000, 10, 7]),
        np.array([1, 2, 3, 4, 5, 5], dtype=np.int8),
        np.array([956703932, 1046454590, 0, 5, 1234567890, 10]),
    ]
    expected = "".join("::".join(str(int(c[i])) for c in cols) + "\n" for i in range(6))
    assert format_dat_lines(cols) == expected.encode()
    assert format_dat_lines([np.array([], dtype=np.int64)] * 4) == b""

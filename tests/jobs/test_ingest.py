"""jobs/ingest.py on a real local SparkSession: hand-computed expectations, hostile input, the
CLI's exit code 3 and one error line above the bad-line threshold, and the pivot of MovieLens
100k u1 checked against a pandas reference."""

from __future__ import annotations

import bz2
import gzip
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from jobs.common.config import DEFAULT_CONF, deep_merge
from jobs.common.errors import BadInputError
from jobs.ingest import main, run_ingest
from jobs.ingestion.transform import user_hash
from tests.conftest import REPO
from tests.jobs.support import CONF_TOML, cli, cli_env, exit_of, one_error_line

QUARANTINE_COLUMNS = ["input", "source", "line", "reason"]


def make_conf(max_bad_fraction: float = 0.01, batch_size: int = 100, seed: int = 42) -> dict:
    return deep_merge(
        DEFAULT_CONF,
        {
            "ingest": {"max_bad_fraction": max_bad_fraction, "batch_size": batch_size},
            "train": {"seed": seed},
        },
    )


def write_lines(path: Path, lines: list[str], sep: str = "\n", encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((sep.join(lines) + sep).encode(encoding))
    return path


def rows(spark, path: str | Path, order: str) -> list[dict]:
    """A Parquet output as plain Python dicts (arrays as lists), sorted by ``order``."""
    return [
        row.asDict(recursive=True) for row in spark.read.parquet(str(path)).orderBy(order).collect()
    ]


def read_summary(out: Path) -> dict:
    return json.loads((out / "ingest_summary.json").read_text())


# --------------------------------------------------------------------------- tiny, both formats

# (user, movie, rating, timestamp); (20, 200) twice: the later one (rating 4) wins.
TINY_TRAIN = [
    (10, 100, 5, 1000),
    (10, 300, 3, 1001),
    (20, 200, 4, 1002),
    (20, 100, 1, 1003),
    (30, 300, 2, 1004),
    (20, 200, 2, 999),
]
TINY_TEST = [
    "10{d}200{d}4{d}2000",  # kept: item 1
    "10{d}100{d}2{d}2001",  # kept, also in train
    "30{d}100{d}5{d}2002",  # duplicate, older
    "30{d}100{d}3{d}2003",  # duplicate, later: kept
    "40{d}100{d}4{d}2004",  # unknown user
    "50{d}999{d}3{d}2007",  # unknown user and unknown movie: counted as an unknown user
    "20{d}999{d}4{d}2005",  # unknown movie
    "20{d}x{d}4{d}2006",  # quarantined: non-numeric movie id
]
MOVIES_DAT = [
    "100::Café Society (1995)::Drama",
    "200::Plain (1996)::Comedy",
    "400::Never (1997)::X",
]
U_ITEM = [
    "100|Café Society (1995)|01-Jan-1995||http://example.org/a|0|1",
    "200|Plain (1996)|01-Jan-1996||http://example.org/b|1|0",
    "400|Never (1997)|01-Jan-1997||http://example.org/c|0|0",
]
# Hand-computed: vocabulary 100 -> 0, 200 -> 1, 300 -> 2.
EXPECTED_ITEMS = [
    {"item_idx": 0, "movie_id": 100, "title": "Café Society (1995)", "n_ratings": 2},
    {"item_idx": 1, "movie_id": 200, "title": "Plain (1996)", "n_ratings": 1},
    {"item_idx": 2, "movie_id": 300, "title": None, "n_ratings": 2},
]
EXPECTED_TRAIN = [
    (10, [0, 2], [5, 3]),
    (20, [0, 1], [1, 4]),
    (30, [2], [2]),
]
EXPECTED_TEST = [
    {"user_id": 10, "items": [0, 1], "ratings": [2, 4], "batch": -1},
    {"user_id": 30, "items": [0], "ratings": [3], "batch": -1},
]


@pytest.fixture(scope="module", params=["::", "\t"], ids=["colons", "tabs"])
def tiny_run(request, spark, tmp_path_factory):
    delim = request.param
    root = tmp_path_factory.mktemp("tiny")
    ratings = write_lines(root / "ratings.dat", [delim.join(map(str, r)) for r in TINY_TRAIN])
    test = write_lines(root / "test.dat", [line.format(d=delim) for line in TINY_TEST])
    # latin-1 movie files: movies.dat with the '::' ratings, u.item with the tab ones.
    movies_lines = MOVIES_DAT if delim == "::" else U_ITEM
    movies = write_lines(root / "movies", movies_lines, encoding="latin-1")
    out = root / "out"
    summary = run_ingest(
        spark,
        make_conf(max_bad_fraction=0.2, batch_size=2),
        str(ratings),
        str(out),
        test=str(test),
        movies=str(movies),
    )
    return summary, out, delim


def test_tiny_vocabulary_and_titles(spark, tiny_run):
    summary, out, delim = tiny_run
    assert rows(spark, out / "ingest" / "items", "item_idx") == EXPECTED_ITEMS
    assert summary["movies"]["lines_read"] == 3
    assert summary["movies"]["titled_items"] == 2
    assert summary["movies"]["items_without_title"] == 1
    assert summary["movies"]["not_in_vocabulary"] == 1
    schema = {
        f.name: f.dataType.simpleString()
        for f in spark.read.parquet(str(out / "ingest" / "items")).schema
    }
    assert schema == {"item_idx": "int", "movie_id": "int", "title": "string", "n_ratings": "int"}


def test_tiny_train_vectors(spark, tiny_run):
    summary, out, delim = tiny_run
    train = rows(spark, out / "ingest" / "train", "user_id")
    assert [(r["user_id"], r["items"], r["ratings"]) for r in train] == EXPECTED_TRAIN
    # 3 users in batches of 2: sizes 2 and 1.
    assert sorted(r["batch"] for r in train) == [0, 0, 1]
    schema = {
        f.name: f.dataType.simpleString()
        for f in spark.read.parquet(str(out / "ingest" / "train")).schema
    }
    assert schema == {
        "user_id": "int",
        "items": "array<int>",
        "ratings": "array<tinyint>",
        "batch": "int",
    }
    expected = {
        "lines_read": 6,
        "accepted": 6,
        "quarantined": 0,
        "duplicates_dropped": 1,
        "reasons": {},
        "ratings": 5,
        "users": 3,
        "items": 3,
        "batches": 2,
        "bad_fraction": 0.0,
        "max_bad_fraction": 0.2,
        "status": "ok",
    }
    assert {k: summary[k] for k in expected} == expected
    assert read_summary(out)["users"] == 3


def test_tiny_test_split_maps_through_train_vocabulary(spark, tiny_run):
    summary, out, delim = tiny_run
    assert rows(spark, out / "ingest" / "test", "user_id") == EXPECTED_TEST
    expected = {
        "lines_read": 8,
        "accepted": 7,
        "quarantined": 1,
        "reasons": {"non-numeric movie id": 1},
        "duplicates_dropped": 1,
        "ratings": 6,
        "unknown_user_pairs": 2,
        "unknown_item_pairs": 1,
        "pairs": 3,
        "pairs_also_in_train": 1,
        "users": 2,
    }
    assert {k: summary["test"][k] for k in expected} == expected
    quarantine = rows(spark, out / "quarantine", "line")
    assert [(q["input"], q["line"], q["reason"]) for q in quarantine] == [
        ("test", f"20{delim}x{delim}4{delim}2006", "non-numeric movie id")
    ]
    assert quarantine[0]["source"].endswith("test.dat")


# --------------------------------------------------------------------------- hostile lines

# (raw line, expected reason or None when accepted); written with '\n', except where noted.
HOSTILE = [
    ("\ufeff1::1::5::100", None),  # UTF-8 BOM at the start of the file
    ("1::2::4::101\r", None),  # CRLF line ending
    ("1::3::3::102::", None),  # one trailing delimiter
    ("2\t1\t4\t103\t", None),  # tab format, trailing tab
    ("3::1::4.0::104", None),  # 4.0 is the integer 4
    ("5::7::2::200", None),  # duplicates of (5, 7): ts 300 wins -> rating 4
    ("5::7::4::300", None),
    ("5::7::1::250", None),
    ("6::7::2::400", None),  # duplicates with equal ts: the higher rating wins -> 5
    ("6::7::5::400", None),
    ("", "blank line"),
    ("   ", "blank line"),
    ("1::2::3", "wrong field count"),
    ("1::2::3::", "wrong field count"),
    ("1::2::3::4::5", "wrong field count"),
    ("1::2::3::4::::", "wrong field count"),
    ("1,2,3,4", "wrong field count"),
    ("abc::1::3::5", "non-numeric user id"),
    ("1::x1::3::5", "non-numeric movie id"),
    ("1.5::1::3::5", "non-numeric user id"),
    ("-1::1::3::5", "non-positive user id"),
    ("0::1::3::5", "non-positive user id"),
    ("1::-5::3::5", "non-positive movie id"),
    ("1::0::3::5", "non-positive movie id"),
    ("3000000000::1::3::5", "user id out of range"),
    ("99999999999999999999::1::3::5", "user id out of range"),
    ("1::2147483648::3::5", "movie id out of range"),
    ("1::1::99999999999999999999::5", "rating out of range"),
    ("1::1::3::-9223372036854775808", "timestamp out of range"),
    ("1::1::3::99999999999999999999", "timestamp out of range"),
    ("1::1::0::5", "rating out of range"),
    ("1::1::6::5", "rating out of range"),
    ("1::1::3.5::5", "non-integer rating"),
    ("1::1::0.5::5", "non-integer rating"),
    ("1::1::NaN::5", "non-numeric rating"),
    ("1::1::::5", "empty rating"),
    ("1::1::abc::5", "non-numeric rating"),
    ("1::1::3::yesterday", "non-numeric timestamp"),
    ("1\t1\t3\tnow", "non-numeric timestamp"),
    # ids are canonical digits: "+7", "0010" or "7" with a control byte are not merged with 7
    ("+7::1::3::5", "non-canonical user id"),
    ("0010::1::3::5", "non-canonical user id"),
    ("7\x01::1::3::5", "non-numeric user id"),
    ("1::+2::3::5", "non-canonical movie id"),
    ("1::0002::3::5", "non-canonical movie id"),
    ("1::\x002::3::5", "non-numeric movie id"),
    ("00::1::3::5", "non-positive user id"),
    # timestamps are seconds: a millisecond one is out of range and cannot win a duplicate
    ("9::7::2::978300000", None),
    ("9::7::5::978300000000", "timestamp out of range"),
    ("1::1::3::253402300800", "timestamp out of range"),  # 10000-01-01
]


@pytest.fixture(scope="module")
def hostile_run(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data = "".join(line + "\n" for line, _ in HOSTILE)
    path = root / "ratings.dat"
    path.write_bytes(data.encode("utf-8"))
    out = root / "out"
    conf = deep_merge(make_conf(max_bad_fraction=1.0), {"ingest": {"rating_scale": "stars"}})
    summary = run_ingest(spark, conf, str(path), str(out))
    return summary, out


def test_hostile_lines_each_quarantined_with_its_reason(spark, hostile_run):
    summary, out = hostile_run
    quarantine = spark.read.parquet(str(out / "quarantine"))
    assert quarantine.columns == QUARANTINE_COLUMNS
    got = sorted((r["line"], r["reason"]) for r in quarantine.collect())
    expected = sorted((line, reason) for line, reason in HOSTILE if reason is not None)
    assert got == expected
    assert {r["input"] for r in quarantine.collect()} == {"ratings"}
    bad = sum(1 for _, reason in HOSTILE if reason)
    assert summary["lines_read"] == len(HOSTILE)
    assert summary["quarantined"] == bad
    assert summary["accepted"] == len(HOSTILE) - bad
    assert summary["accepted"] + summary["quarantined"] == summary["lines_read"]
    assert sum(summary["reasons"].values()) == bad
    assert summary["reasons"]["rating out of range"] == 3
    assert summary["reasons"]["non-canonical user id"] == 2
    assert summary["reasons"]["timestamp out of range"] == 4
    assert summary["bad_fraction"] == pytest.approx(bad / len(HOSTILE), abs=1e-6)


def test_hostile_accepted_lines_and_duplicates(spark, hostile_run):
    summary, out = hostile_run
    items = rows(spark, out / "ingest" / "items", "item_idx")
    assert [(i["item_idx"], i["movie_id"], i["n_ratings"]) for i in items] == [
        (0, 1, 3),
        (1, 2, 1),
        (2, 3, 1),
        (3, 7, 3),
    ]
    train = rows(spark, out / "ingest" / "train", "user_id")
    assert [(r["user_id"], r["items"], r["ratings"]) for r in train] == [
        (1, [0, 1, 2], [5, 4, 3]),
        (2, [0], [4]),
        (3, [0], [4]),
        (5, [3], [4]),
        (6, [3], [5]),
        (9, [3], [2]),  # the seconds timestamp's rating: the millisecond line is quarantined
    ]
    assert summary["duplicates_dropped"] == 3
    assert summary["ratings"] == 8


# ------------------------------------------------------------------------ compressed, dirs, globs


def part_lines(user: int) -> list[str]:
    """User u rates movies u and u+1 with (u % 5) + 1 and u % 4 + 1."""
    return [
        f"{user}::{user}::{user % 5 + 1}::{1000 + user}",
        f"{user}::{user + 1}::{user % 4 + 1}::7",
    ]


@pytest.fixture(scope="module")
def parts_dir(tmp_path_factory) -> Path:
    """12 part files (users 1..12): part-00003 gzip, part-00007 bz2 with one bad line, _SUCCESS."""
    root = tmp_path_factory.mktemp("parts") / "ratings"
    root.mkdir()
    for i in range(12):
        text = "\n".join(part_lines(i + 1)) + "\n"
        if i == 3:
            (root / f"part-{i:05d}.gz").write_bytes(gzip.compress(text.encode()))
        elif i == 7:
            text += "8::9::7::1\n"  # rating out of range
            (root / f"part-{i:05d}.bz2").write_bytes(bz2.compress(text.encode()))
        else:
            (root / f"part-{i:05d}").write_text(text)
    (root / "_SUCCESS").write_text("")
    return root


def test_directory_of_compressed_part_files(spark, parts_dir, tmp_path):
    out = tmp_path / "out"
    summary = run_ingest(spark, make_conf(max_bad_fraction=0.1), str(parts_dir), str(out))
    assert (summary["lines_read"], summary["accepted"], summary["quarantined"]) == (25, 24, 1)
    assert summary["users"] == 12 and summary["items"] == 13 and summary["ratings"] == 24
    train = rows(spark, out / "ingest" / "train", "user_id")
    # movie m has item_idx m - 1 (movies 1..13 all rated)
    assert [(r["user_id"], r["items"], r["ratings"]) for r in train] == [
        (u, [u - 1, u], [u % 5 + 1, u % 4 + 1]) for u in range(1, 13)
    ]
    (bad,) = spark.read.parquet(str(out / "quarantine")).collect()
    assert (bad["line"], bad["reason"]) == ("8::9::7::1", "rating out of range")
    assert bad["source"].endswith("part-00007.bz2")


def test_glob(spark, parts_dir, tmp_path):
    out = tmp_path / "out"
    summary = run_ingest(spark, make_conf(), str(parts_dir / "part-0000[0-4]*"), str(out))
    assert (summary["lines_read"], summary["users"], summary["items"]) == (10, 5, 6)
    users = [r["user_id"] for r in rows(spark, out / "ingest" / "train", "user_id")]
    assert users == [1, 2, 3, 4, 5]


# --------------------------------------------------------------------------- failures


def test_missing_paths_are_bad_input(spark, tmp_path):
    with pytest.raises(BadInputError, match="ratings path not found: .*nope.dat"):
        run_ingest(spark, make_conf(), str(tmp_path / "nope.dat"), str(tmp_path / "out"))
    with pytest.raises(BadInputError, match="ratings path not found"):
        run_ingest(spark, make_conf(), str(tmp_path / "none-*.dat"), str(tmp_path / "out"))
    ratings = write_lines(tmp_path / "r.dat", ["1::1::5::1"])
    with pytest.raises(BadInputError, match="test path not found"):
        run_ingest(
            spark, make_conf(), str(ratings), str(tmp_path / "out"), test=str(tmp_path / "t")
        )
    assert BadInputError.exit_code == 3


def test_empty_and_all_bad_inputs(spark, tmp_path):
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    with pytest.raises(BadInputError, match="ratings input is empty"):
        run_ingest(spark, make_conf(), str(empty), str(tmp_path / "out1"))
    all_bad = write_lines(tmp_path / "bad.dat", ["x::1::5::1", "1::1::9::1"])
    with pytest.raises(BadInputError, match="no valid line"):
        run_ingest(spark, make_conf(max_bad_fraction=1.0), str(all_bad), str(tmp_path / "out2"))


def test_truncated_gzip_and_overlong_lines_are_bad_input(spark, tmp_path, capsys):
    """A truncated .gz ends in exit 3 with one line naming the file, and a line longer than
    ingest.max_line_bytes (here 1 KiB) is not read into memory: exit 3 for an uncompressed
    file; nothing is published."""
    text = "".join(f"{u}::{m}::3::978300000\n" for u in range(1, 300) for m in range(1, 30))
    packed = gzip.compress(text.encode())
    (tmp_path / "cut.dat.gz").write_bytes(packed[: len(packed) // 2])
    code, err = exit_of(lambda: run_ingest(spark, make_conf(), str(tmp_path / "cut.dat.gz"),
                                           str(tmp_path / "o1")), capsys)  # fmt: skip
    line = one_error_line(err)
    assert code == 3 and "cut.dat.gz (EOFException: Unexpected end of input stream)" in line
    assert read_summary(tmp_path / "o1")["status"] == "failed"
    lines = text.splitlines(keepends=True)
    long = "".join(lines[:50]) + "9::9::3::" + "7" * 5000 + "\n" + "".join(lines[50:100])
    (tmp_path / "long.dat").write_text(long)
    conf = deep_merge(make_conf(), {"ingest": {"max_line_bytes": 1024}})
    code, err = exit_of(lambda: run_ingest(spark, conf, str(tmp_path / "long.dat"),
                                           str(tmp_path / "o2")), capsys)  # fmt: skip
    line = one_error_line(err)
    assert code == 3 and "long.dat has lines longer than ingest.max_line_bytes (1024)" in line
    assert "5010 bytes of them were not read" in line
    for out in ("o1", "o2"):
        assert not (tmp_path / out / "ingest").exists()


def test_bad_fraction_above_threshold(spark, tmp_path):
    lines = [f"{u}::1::3::1" for u in range(1, 8)] + ["1::1::9::1", "1::a::1::1", "1::1"]
    ratings = write_lines(tmp_path / "r.dat", lines)
    out = tmp_path / "out"
    with pytest.raises(BadInputError) as info:
        run_ingest(spark, make_conf(max_bad_fraction=0.2), str(ratings), str(out))
    message = str(info.value)
    assert "\n" not in message
    assert "0.3000" in message and "0.2" in message and str(out / "quarantine") in message
    summary = read_summary(out)
    assert summary["status"] == "failed" and summary["error"] == message
    assert (summary["lines_read"], summary["accepted"], summary["quarantined"]) == (10, 7, 3)
    assert summary["bad_fraction"] == pytest.approx(0.3)
    assert spark.read.parquet(str(out / "quarantine")).count() == 3
    assert not (out / "ingest" / "train").exists()


def test_ingest_cli_above_bad_fraction_exits_3_with_one_line(tmp_path):
    conf_path = tmp_path / "conf.toml"
    conf_path.write_text(CONF_TOML)
    lines = [f"{u}::{u}::4::1" for u in range(1, 9)] + ["1::2::9::1", "x::1::3::1"]
    ratings = tmp_path / "ratings.dat"
    ratings.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        cli("ingest", "--ratings", str(ratings), "--out", str(out), "--master", "local[1]",
            "--conf", str(conf_path), "--max-bad-fraction", "0.1"),
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc.stderr)
    assert line == proc.stderr.strip().splitlines()[-1]
    assert "2 of 10 lines bad" in line and "max_bad_fraction 0.1" in line
    assert str(out / "quarantine") in line
    summary = json.loads((out / "ingest_summary.json").read_text())
    assert (summary["status"], summary["quarantined"]) == ("failed", 2)
    assert not (out / "ingest" / "train").exists()


# --------------------------------------------------------------------------- CLI on ml-100k u1


def test_cli_on_u1_matches_pandas_reference(spark, ml100k_dat, tmp_path):
    out = tmp_path / "out"
    code = main(
        [
            "--ratings",
            str(ml100k_dat / "u1.base.dat"),
            "--test",
            str(ml100k_dat / "u1.test.dat"),
            "--movies",
            str(ml100k_dat / "movies.dat"),
            "--out",
            str(out),
            "--batch-size",
            "100",
            "--set",
            "train.seed=7",
            "--master",
            "local[2]",
        ]
    )
    assert code == 0
    summary = read_summary(out)

    # The reference: the tab-separated u1 files of ml-100k, pivoted with pandas.
    names = ["user_id", "movie_id", "rating", "ts"]
    base = pd.read_csv(ml100k_dat.parent / "ml-100k" / "u1.base", sep="\t", names=names)
    test = pd.read_csv(ml100k_dat.parent / "ml-100k" / "u1.test", sep="\t", names=names)
    movie_ids = sorted(base["movie_id"].unique())
    vocab = {movie: idx for idx, movie in enumerate(movie_ids)}

    def pivot(df: pd.DataFrame) -> dict[int, tuple[list[int], list[int]]]:
        df = df.assign(item=df["movie_id"].map(vocab)).sort_values(["user_id", "item"])
        return {
            int(user): (g["item"].tolist(), g["rating"].tolist())
            for user, g in df.groupby("user_id")
        }

    train = rows(spark, out / "ingest" / "train", "user_id")
    assert {r["user_id"]: (r["items"], r["ratings"]) for r in train} == pivot(base)
    items = rows(spark, out / "ingest" / "items", "item_idx")
    assert [i["movie_id"] for i in items] == movie_ids
    counts = base["movie_id"].value_counts()
    assert [i["n_ratings"] for i in items] == [int(counts[m]) for m in movie_ids]
    assert items[vocab[543]]["title"] == "Misérables, Les (1995)"  # latin-1 in movies.dat
    assert items[vocab[1]]["title"] == "Toy Story (1995)"

    known = test[test["user_id"].isin(base["user_id"]) & test["movie_id"].isin(vocab)]
    test_rows = rows(spark, out / "ingest" / "test", "user_id")
    assert {r["user_id"]: (r["items"], r["ratings"]) for r in test_rows} == pivot(known)
    assert {r["batch"] for r in test_rows} == {-1}
    assert summary["test"]["pairs"] == len(known)
    assert summary["test"]["unknown_user_pairs"] == int(
        (~test["user_id"].isin(base["user_id"])).sum()
    )
    assert (
        summary["test"]["unknown_item_pairs"]
        == len(test) - len(known) - summary["test"]["unknown_user_pairs"]
    )

    # 943 users in batches of 100: nine full batches and one of 43, as assign_batches says.
    sizes = pd.Series([r["batch"] for r in train]).value_counts().sort_index()
    assert list(sizes) == [100] * 9 + [43]
    users = spark.createDataFrame([(r["user_id"],) for r in train], "user_id int")
    hashed = users.select("user_id", user_hash(7).alias("h")).toPandas()
    ordered = hashed.sort_values(["h", "user_id"])["user_id"].tolist()  # the documented order
    expected = {user: pos // 100 for pos, user in enumerate(ordered)}
    assert {r["user_id"]: r["batch"] for r in train} == expected

    assert (summary["lines_read"], summary["accepted"], summary["quarantined"]) == (80000, 80000, 0)
    assert (summary["users"], summary["items"], summary["ratings"]) == (943, 1650, 80000)
    assert summary["batches"] == 10 and summary["seed"] == 7 and summary["status"] == "ok"
    assert summary["test"]["lines_read"] == 20000
    assert summary["movies"]["lines_read"] == 1682 and summary["movies"]["titled_items"] == 1650
    quarantine = spark.read.parquet(str(out / "quarantine"))
    assert quarantine.columns == QUARANTINE_COLUMNS and quarantine.count() == 0

    # Two files per core at least, each its own scoring task: score needs no shuffle.
    from jobs.common.session import restoring_conf
    from jobs.score import MIN_SPLITS, read_users, score_tasks

    tasks = score_tasks(spark)
    assert len(list((out / "ingest" / "train").glob("part-*.parquet"))) >= tasks
    before = spark.conf.get(MIN_SPLITS, None)
    with restoring_conf(spark, MIN_SPLITS):
        assert read_users(spark, str(out / "ingest" / "train")).rdd.getNumPartitions() >= tasks
        assert spark.conf.get(MIN_SPLITS) == str(tasks)
    assert spark.conf.get(MIN_SPLITS, None) == before  # the session's setting is back

"""Ingest of every input shape users have (jobs/ingestion/sources.py): the same generated
ratings as ``::`` lines, tab lines, CSV with a header and Parquet give the same unit; a CSV
shaped like MovieLens 25M's first lines (header, quoting, half stars); a Spark table of the
local catalog with its own column names; implicit data; declared scales; and bad input in each
format, quarantined with its reason or refused with one line naming the input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.common.config import DEFAULT_CONF, deep_merge
from jobs.common.errors import BadInputError, UsageError
from jobs.ingest import run_ingest
from jobs.train import run_train
from rbmcore.data.synthetic import FORMATS, GeneratorSpec, generate_chunks, write_dataset
from tests.jobs.support import exit_of, one_error_line

SPEC = GeneratorSpec(n_users=60, n_movies=50, n_ratings=1_800, seed=11, test_fraction=0.2,
                     half_stars=True)  # fmt: skip


def make_conf(**ingest) -> dict:
    return deep_merge(DEFAULT_CONF, {"ingest": {"max_bad_fraction": 0.01, **ingest},
                                     "train": {"seed": 3}})  # fmt: skip


def rows(spark, path: Path, order: str) -> list[dict]:
    table = spark.read.parquet(str(path)).orderBy(order)
    return [r.asDict(recursive=True) for r in table.collect()]


def unit_rows(spark, out: Path) -> dict[str, list]:
    """The unit's tables as plain rows (the items without titles: compared apart)."""
    items = rows(spark, out / "ingest" / "items", "item_idx")
    return {
        "items": [(i["item_idx"], i["movie_id"], i["n_ratings"]) for i in items],
        "titles": [i["title"] for i in items],
        "train": [(r["user_id"], r["items"], r["ratings"], r["batch"])
                  for r in rows(spark, out / "ingest" / "train", "user_id")],  # fmt: skip
        "test": [(r["user_id"], r["items"], r["ratings"])
                 for r in rows(spark, out / "ingest" / "test", "user_id")]
        if (out / "ingest" / "test").exists() else None,
    }  # fmt: skip


@pytest.fixture(scope="module")
def every_format(spark, tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """The generated half-star data in each format, ingested with the defaults (auto)."""
    root = tmp_path_factory.mktemp("formats")
    result = {}
    for fmt, (_, train, test, movies) in FORMATS.items():
        data = root / fmt
        write_dataset(SPEC, str(data), fmt=fmt)
        out = root / f"out-{fmt}"
        summary = run_ingest(spark, make_conf(), str(data / train), str(out),
                             test=str(data / test), movies=str(data / movies))  # fmt: skip
        result[fmt] = (summary, unit_rows(spark, out))
    return result


def test_every_format_gives_the_same_unit(every_format):
    reference = every_format["dat"][1]
    for fmt, (summary, unit) in every_format.items():
        assert unit == reference, fmt
        assert summary["rating_scale"]["name"] == "half-stars", fmt
        assert (summary["quarantined"], summary["test"]["quarantined"]) == (0, 0), fmt
    formats = {fmt: s["inputs"]["ratings"]["format"] for fmt, (s, _) in every_format.items()}
    assert formats == {"dat": "text", "tab": "text", "csv": "csv", "parquet": "parquet"}
    assert every_format["csv"][0]["header_lines"] == 1  # not counted as lines read


def test_ratings_are_the_generated_half_star_codes(every_format):
    summary, unit = every_format["csv"]
    users, movies, codes, _ = (np.concatenate(c) for c in zip(*generate_chunks(SPEC), strict=True))
    assert summary["lines_read"] + summary["test"]["lines_read"] == SPEC.n_ratings
    assert summary["rating_scale"]["like_threshold"] == 3.0
    movie_ids = [m for _, m, _ in unit["items"]]
    by_pair = dict(zip(zip(users.tolist(), movies.tolist(), strict=True), codes.tolist(),
                       strict=True))  # fmt: skip
    for user, items, ratings, _ in unit["train"]:
        assert ratings == [by_pair[(user, movie_ids[i])] for i in items]
    assert {r for _, _, ratings, _ in unit["train"] for r in ratings} <= set(range(1, 11))
    assert any(r % 2 == 1 for _, _, ratings, _ in unit["train"] for r in ratings)  # x.5 stars


def test_titles_from_movies_dat_u_item_and_movies_csv_agree(every_format):
    titles = {fmt: unit["titles"] for fmt, (_, unit) in every_format.items()}
    assert titles["dat"] == titles["tab"] == titles["csv"] == titles["parquet"]
    assert all(t and t.startswith("Synthetic Movie") for t in titles["csv"])


# ml-25m's shape: header, ratings with one decimal, \n lines; movies.csv in UTF-8 with titles
# quoted when they hold a comma, "" for a quote inside. The values here are made up.
ML25M_RATINGS = (
    "userId,movieId,rating,timestamp\n"
    "1,296,5.0,1147880044\n"
    "1,306,3.5,1147868817\n"
    "1,307,5.0,1147868828\n"
    "2,296,0.5,1141415820\n"
    "2,665,4.5,1141415528\n"
    '3,"307",3.0,1439474476\n'  # a quoted number is the number
    '"3,4",306,4.0,1439474477\n'  # a quoted comma: one field, not a user id
    "3,665,4.0,1439474478,extra\n"  # five fields
    "4,306,3.7,1439474479\n"  # between half stars
)
ML25M_MOVIES = (
    "movieId,title,genres\n"
    "296,Pulp Fiction (1994),Comedy|Crime|Drama|Thriller\n"
    '306,"Three Colors: Red (Trois couleurs: Rouge) (1994)",Drama\n'
    '307,"Three Colors: Blue, ""Bleu"" (1993)",Drama\n'
    "665,Underground (1995),Comedy|Drama|War\n"
)


def test_csv_shaped_like_movielens_25m(spark, tmp_path):
    (tmp_path / "ratings.csv").write_text(ML25M_RATINGS)
    (tmp_path / "movies.csv").write_text(ML25M_MOVIES, encoding="utf-8")
    out = tmp_path / "out"
    summary = run_ingest(spark, make_conf(max_bad_fraction=0.5), str(tmp_path / "ratings.csv"),
                         str(out), movies=str(tmp_path / "movies.csv"))  # fmt: skip
    assert summary["rating_scale"]["name"] == "half-stars"
    assert (summary["lines_read"], summary["accepted"], summary["header_lines"]) == (9, 6, 1)
    assert summary["reasons"] == {"non-numeric user id": 1, "wrong field count": 1,
                                  "rating between the scale's steps": 1}  # fmt: skip
    unit = unit_rows(spark, out)
    assert unit["items"] == [(0, 296, 2), (1, 306, 1), (2, 307, 2), (3, 665, 1)]
    assert unit["titles"] == ["Pulp Fiction (1994)",
                              "Three Colors: Red (Trois couleurs: Rouge) (1994)",
                              'Three Colors: Blue, "Bleu" (1993)', "Underground (1995)"]
    assert [(u, i, r) for u, i, r, _ in unit["train"]] == [
        (1, [0, 1, 2], [10, 7, 10]), (2, [0, 3], [1, 9]), (3, [2], [6]),
    ]  # fmt: skip
    quarantine = {r["line"]: r["reason"] for r in rows(spark, out / "quarantine", "line")}
    assert quarantine['"3,4",306,4.0,1439474477'] == "non-numeric user id"
    assert quarantine["4,306,3.7,1439474479"] == "rating between the scale's steps"
    assert summary["movies"]["titled_items"] == 4 and summary["movies"]["quarantined"] == 0


def test_spark_table_with_its_own_column_names(spark, tmp_path):
    spark.sql(f"CREATE DATABASE IF NOT EXISTS rbm_ingest_test LOCATION '{tmp_path / 'wh'}'")
    frame = spark.createDataFrame(
        [(7, 70, 4, 1000), (7, 71, 2, 1001), (8, 70, 5, 1002), (8, 70, 3, 999), (9, 72, 9, 5)],
        "uid int, sku long, stars int, at long",
    )
    frame.write.mode("overwrite").saveAsTable("rbm_ingest_test.plays")
    columns = {"user": "uid", "item": "sku", "rating": "stars", "time": "at"}
    out = tmp_path / "out"
    summary = run_ingest(spark, make_conf(columns=columns, max_bad_fraction=0.5), None,
                         str(out), ratings_table="rbm_ingest_test.plays")  # fmt: skip
    assert summary["inputs"]["ratings"] == {"format": "table", "location": "rbm_ingest_test.plays",
                                            "columns": columns}  # fmt: skip
    assert (summary["accepted"], summary["quarantined"], summary["duplicates_dropped"]) == (4, 1, 1)
    assert summary["reasons"] == {"rating out of range": 1}
    unit = unit_rows(spark, out)
    assert [(u, i, r) for u, i, r, _ in unit["train"]] == [(7, [0, 1], [4, 2]), (8, [0], [5])]
    (bad,) = rows(spark, out / "quarantine", "line")
    assert (bad["line"], bad["source"]) == ("9,72,9,5", "rbm_ingest_test.plays")
    with pytest.raises(BadInputError, match="ratings table not found: rbm_ingest_test.nope"):
        run_ingest(spark, make_conf(), None, str(tmp_path / "o2"),
                   ratings_table="rbm_ingest_test.nope")  # fmt: skip
    spark.sql("DROP DATABASE rbm_ingest_test CASCADE")


def test_implicit_parquet_trains_the_rated_kind_only(spark, tmp_path, capsys):
    table = pa.table({"user": pa.array([1, 1, 2, 2, 2, 3], pa.int64()),
                      "item": pa.array([5, 6, 5, 6, 6, 7], pa.int64())})  # fmt: skip
    pq.write_table(table, tmp_path / "plays.parquet")
    out = tmp_path / "out"
    conf = make_conf(columns="user=user,item=item")
    summary = run_ingest(spark, conf, str(tmp_path / "plays.parquet"), str(out))
    assert summary["rating_scale"]["implicit"] and summary["duplicates_dropped"] == 1
    assert [(u, i, r) for u, i, r, _ in unit_rows(spark, out)["train"]] == [
        (1, [0, 1], [1, 1]), (2, [0, 1], [1, 1]), (3, [2], [1])
    ]
    conf["train"] = {"kind": "binary", "epochs": 1, "n_hidden": 4, "device": "cpu"}
    code, err = exit_of(lambda: run_train(spark, conf, str(out)), capsys)
    assert code == 2 and "the binary kind needs ratings" in one_error_line(err)
    conf["train"] = {"kind": "rated", "epochs": 1, "n_hidden": 4, "n_models": 1,
                     "item_based": False, "device": "cpu", "refit": False}  # fmt: skip
    meta = run_train(spark, conf, str(out))
    assert meta["hyperparameters"]["scale"]["implicit"]
    assert meta["training"]["ingest_id"] == summary["ingest_id"]


def test_declared_scales(spark, tmp_path):
    lines = ["1\t1\t10\t5", "1\t2\t6\t5", "2\t1\t1\t5", "2\t2\t4.5\t5", "3\t1\t11\t5"]
    (tmp_path / "u.data").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    summary = run_ingest(spark, make_conf(rating_scale="1..10", like_threshold=7,
                                          max_bad_fraction=0.5),
                         str(tmp_path / "u.data"), str(out))  # fmt: skip
    assert summary["rating_scale"] == {"name": "1..10", "low": 1.0, "high": 10.0, "step": 1.0,
                                       "levels": 10, "like_threshold": 7.0, "implicit": False}
    assert summary["reasons"] == {"non-integer rating": 1, "rating out of range": 1}
    assert [(u, r) for u, _, r, _ in unit_rows(spark, out)["train"]] == [(1, [10, 6]), (2, [1])]
    manifest = json.loads((out / "ingest" / "_ingest.json").read_text())
    assert manifest["rating_scale"] == summary["rating_scale"]


def test_bad_inputs_are_refused_with_one_line(spark, tmp_path, capsys):
    (tmp_path / "wrong.csv").write_text("user,item,score,ts\n1,2,3.0,4\n")
    code, err = exit_of(lambda: run_ingest(spark, make_conf(), str(tmp_path / "wrong.csv"),
                                           str(tmp_path / "o1")), capsys)  # fmt: skip
    line = one_error_line(err)
    assert code == 3 and "wrong.csv" in line and "has no column 'userId' for the user" in line
    typed = pa.table({"userId": pa.array([[1], [2]]), "movieId": pa.array([1, 2])})
    pq.write_table(typed, tmp_path / "typed.parquet")
    code, err = exit_of(lambda: run_ingest(spark, make_conf(), str(tmp_path / "typed.parquet"),
                                           str(tmp_path / "o2")), capsys)  # fmt: skip
    line = one_error_line(err)
    assert code == 3 and "typed.parquet: column userId (user) has type array<bigint>" in line
    pq.write_table(pa.table({"userId": [1, 2], "movieId": [1, 2]}), tmp_path / "plays.parquet")
    code, err = exit_of(lambda: run_ingest(spark, make_conf(rating_scale="stars"),
                                           str(tmp_path / "plays.parquet"), str(tmp_path / "o3"),
                                           ), capsys)  # fmt: skip
    line = one_error_line(err)
    assert code == 3 and "has no rating column, but the rating scale 1..5 is declared" in line
    (tmp_path / "r.dat").write_text("1::2::3::4\n")
    with pytest.raises(UsageError, match="--columns needs a CSV header"):
        run_ingest(spark, make_conf(columns="user=u,item=i"), str(tmp_path / "r.dat"),
                   str(tmp_path / "o4"))  # fmt: skip
    with pytest.raises(UsageError, match="unknown \\[ingest\\] settings: colums"):
        run_ingest(spark, make_conf(colums="x"), str(tmp_path / "r.dat"), str(tmp_path / "o5"))
    for out in ("o1", "o2", "o3", "o4", "o5"):
        assert not (tmp_path / out / "ingest").exists()

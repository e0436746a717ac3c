"""population.py over hand-built tables: every answer is computed here from the draws themselves
(sorting and counting lists), not by regspace's code."""

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from regspace import population
from regspace.errors import RegspaceError
from regspace.schema import MODELS_SCHEMA, conform


def random_draws(seed: int):
    """A population built by hand: per space, draws (seed, draw index, model id) of two seeded streams,
    with networks repeating, cut into sampling calls at random points. Returns (draws, rows): rows are
    the models table's rows, one per (space, network, call), as the sampler writes them."""
    rng = np.random.default_rng(seed)
    draws, rows = [], []
    for space in ("A", "B", "C"):
        pool = [f"{space}{k}" for k in range(12)]  # few networks: repeats are common
        for stream in (3, 0):
            indices = np.sort(rng.choice(200, size=25, replace=False))
            mids = [pool[k] for k in rng.integers(0, len(pool), size=len(indices))]
            draws += [(space, stream, int(i), m) for i, m in zip(indices, mids)]
            cuts = sorted(rng.choice(np.arange(1, len(indices)), size=3, replace=False))
            for call in np.split(np.arange(len(indices)), cuts):
                by_mid: dict[str, list[int]] = {}
                for j in call:
                    by_mid.setdefault(mids[j], []).append(int(indices[j]))
                for mid, idx in by_mid.items():
                    rows.append(
                        {"space": space, "model_id": mid, "seed": stream, "draw_index": idx[0],
                         "multiplicity": len(idx), "draw_indices": idx}
                    )  # fmt: skip
    order = rng.permutation(len(rows))  # write order is not sampling order
    return draws, [rows[i] for i in order]


def table(rows):
    return conform({k: [r.get(k) for r in rows] for k in rows[0]}, MODELS_SCHEMA)


@pytest.mark.parametrize("seed", range(5))
def test_merged_multiplicity_is_the_number_of_draws(seed):
    draws, rows = random_draws(seed)
    merged = population.merge_draws(table(rows)).to_pylist()
    want = Counter((s, m) for s, _, _, m in draws)
    assert {(r["space"], r["model_id"]): r["multiplicity"] for r in merged} == want
    for r in merged:  # every draw index of the network (both streams), sorted; the first row written kept
        assert r["draw_indices"] == sorted(i for s, _, i, m in draws if (s, m) == (r["space"], r["model_id"]))
        first = next(x for x in rows if (x["space"], x["model_id"]) == (r["space"], r["model_id"]))
        assert (r["seed"], r["draw_index"]) == (first["seed"], first["draw_index"])
    firsts = list(dict.fromkeys((x["space"], x["model_id"]) for x in rows))
    assert [(r["space"], r["model_id"]) for r in merged] == firsts
    for space in "ABC":
        assert population.draw_count(table(rows), space) == sum(1 for d in draws if d[0] == space) == 50
        assert population.draw_count(table(rows), space) == population.draw_count(table(merged), space)


def test_merging_counts_a_null_multiplicity_once_and_leaves_distinct_rows_alone():
    rows = [
        {"space": "A", "model_id": "m", "seed": 0, "draw_index": 4, "multiplicity": None, "draw_indices": [4]},
        {"space": "A", "model_id": "m", "seed": 0, "draw_index": 9, "multiplicity": 2, "draw_indices": [9, 11]},
        {"space": "B", "model_id": "m", "seed": 0, "draw_index": 1, "multiplicity": 1, "draw_indices": [1]},
    ]
    merged = population.merge_draws(table(rows)).to_pylist()
    assert [(r["space"], r["multiplicity"], r["draw_indices"]) for r in merged] == [("A", 3, [4, 9, 11]), ("B", 1, [1])]
    distinct = table(rows[1:])
    assert population.merge_draws(distinct).equals(distinct)
    assert population.merge_draws(distinct.slice(0, 0)).num_rows == 0


@pytest.mark.parametrize("seed", range(5))
def test_draw_order_is_by_seed_then_draw_index(seed):
    draws, rows = random_draws(seed)
    t = table(rows + rows[:7])  # rows written twice count once
    order = population.draw_order(t, ["C", "A", "Z"])
    assert list(order) == ["C", "A", "Z"] and order["Z"] == []
    for space in ("C", "A"):
        assert order[space] == [m for *_, m in sorted(d for d in draws if d[0] == space)]
    assert list(population.draw_order(t)) == list(dict.fromkeys(r["space"] for r in rows))


@pytest.mark.parametrize("m", [1, 7, 25, 26, 49, 50, 99])
def test_first_draws_count_each_network_among_the_first_m(m):
    draws, rows = random_draws(11)
    want = Counter()
    for space in "ABC":
        for _, _, _, mid in sorted(d for d in draws if d[0] == space)[:m]:
            want[(space, mid)] += 1
    assert population.first_draws(table(rows), m) == dict(want)
    models = pd.DataFrame(population.merge_draws(table(rows)).to_pylist())
    cut = population.cut_to_first_draws(models, table(rows), m)
    assert dict(zip(zip(cut.space, cut.model_id), cut.multiplicity)) == dict(want)
    assert cut.multiplicity.sum() == 3 * min(m, 50)
    with pytest.raises(RegspaceError, match="at least 1"):
        population.cut_to_first_draws(models, table(rows), 0)


def test_schema_1_rows_are_one_draw_at_their_draw_index():
    rows = [
        {"space": "A", "model_id": "a", "seed": None, "draw_index": 5, "multiplicity": None, "draw_indices": None},
        {"space": "A", "model_id": "b", "seed": None, "draw_index": 2, "multiplicity": None, "draw_indices": None},
        {"space": "A", "model_id": "c", "seed": None, "draw_index": None, "multiplicity": None, "draw_indices": None},
    ]
    assert population.draw_order(table(rows))["A"] == ["c", "b", "a"]
    assert population.first_draws(table(rows), 2) == {("A", "c"): 1, ("A", "b"): 1}


@pytest.mark.parametrize("seed", range(3))
def test_next_draw_follows_the_last_draw_of_the_stream(seed):
    draws, rows = random_draws(seed)
    for space in "AB":
        for stream in (0, 3):
            want = max(i for s, st, i, _ in draws if (s, st) == (space, stream)) + 1
            assert population.next_draw(table(rows), space, stream) == want
        assert population.next_draw(table(rows), space, 1) == 0
    assert population.next_draw(table(rows), "Z", 0) == 0


def test_one_calls_draws_group_by_network_in_order_of_first_draw():
    ids = ["x", "y", "x", "z", "y", "x"]
    draws = {"model_id": ids, "draw_index": np.array([3, 5, 8, 9, 10, 14]), "flops": np.array([1, 2, 1, 3, 2, 1])}
    out = population.group_by_network(draws)
    assert out["model_id"] == ["x", "y", "z"] and out["flops"].tolist() == [1, 2, 3]
    assert out["multiplicity"].tolist() == [ids.count(m) for m in ("x", "y", "z")]
    assert out["draw_indices"] == [[3, 8, 14], [5, 10], [9]] and out["draw_index"].tolist() == [3, 5, 9]


def test_status_counts_and_the_finished_prefix():
    status = {"a": "ok", "b": "failed", "c": "diverged", "e": "ok"}
    draws = ["a", "b", "a", "c", "d", "e"]
    assert population.status_counts(draws, status) == {"ok": 3, "diverged": 1, "failed": 1, "pending": 1}
    assert population.status_counts(set(draws), status) == {"ok": 2, "diverged": 1, "failed": 1, "pending": 1}
    assert population.finished_prefix(draws, status) == 4  # d has no result
    assert population.finished_prefix(draws[:4], status) == 4 and population.finished_prefix([], status) == 0


def test_space_status_counts_networks_per_recipe():
    models = pa.table({"space": ["S", "S", "S", "T"], "model_id": ["a", "b", "c", "a"], "multiplicity": [2, 1, 3, 1]})
    results = pa.table(
        {
            "model_id": ["a", "b", "a", "c"],
            "recipe_hash": ["r1", "r1", "r2", "r1"],
            "status": ["ok", "ok", "ok", "failed"],
            "error": [10.0, 20.0, 5.0, None],
        }
    )
    rows = population.space_status(models, results)
    got = {(r["space"], r["recipe"]): [r[k] for k in ("draws", "sampled", "ok", "failed", "pending")] for r in rows}
    assert got == {
        ("S", "r1"): [6, 3, 2, 1, 0],
        ("S", "r2"): [6, 3, 1, 0, 2],
        ("T", "r1"): [1, 1, 1, 0, 0],
        ("T", "r2"): [1, 1, 1, 0, 0],
    }
    s_r1 = rows[0]
    assert (s_r1["min_error"], s_r1["median_error"]) == (10.0, 15.0)
    only = population.space_status(models, results, recipe_hash="r2")
    assert [(r["space"], r["recipe"], r["ok"]) for r in only] == [("S", "r2", 1), ("T", "r2", 1)]
    none = population.space_status(models, results.slice(0, 0), recipe_hash=None)
    assert [(r["space"], r["recipe"], r["pending"], r["min_error"]) for r in none] == [("S", None, 3, None),
                                                                                      ("T", None, 1, None)]  # fmt: skip

"""All 24 reference models of regnet_zoo.tsv, through `regspace describe --json`."""

import csv
import json

import pytest

from conftest import DATA


def reference_rows():
    path = DATA / "regnet_zoo.tsv"
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def ints(text):
    return [int(x) for x in text.split(",")]


def test_all_24_reference_models_exact(run_cli):
    rows = reference_rows()
    assert len(rows) == 24
    code, out, err = run_cli("describe", *[r["name"] for r in rows], "--json")
    assert code == 0, err
    got = json.loads(out)
    assert [g["name"] for g in got] == [r["name"] for r in rows]
    for r, g in zip(rows, got):
        assert g["flops"] == int(r["flops"]), r["name"]
        assert g["params"] == int(r["params"]), r["name"]
        assert g["acts"] == int(r["acts"]), r["name"]
        assert g["stage_widths"] == ints(r["stage_widths"]), r["name"]
        assert g["stage_depths"] == ints(r["stage_depths"]), r["name"]
        assert g["stage_group_widths"] == ints(r["stage_group_w"]), r["name"]
        assert g["se_ratio"] == float(r["se_ratio"])


@pytest.mark.parametrize("row", reference_rows()[::5], ids=lambda r: r["name"])
def test_explicit_regnet_spec_matches_zoo_name(run_cli, row):
    spec = f"regnet:d={row['d']},w0={row['w0']},wa={row['wa']},wm={row['wm']},g={row['g']},b=1,se={row['se_ratio']}"
    code, out, _ = run_cli("describe", spec, row["name"], "--json")
    assert code == 0
    a, b = json.loads(out)
    for k in ("flops", "params", "acts", "stage_widths", "stage_depths", "stage_group_widths", "model_id"):
        assert a[k] == b[k]


def test_anynet_spec_of_the_same_stages_is_the_same_model(run_cli):
    code, out, _ = run_cli("describe", "RegNetX-400MF", "anynet:d=1,2,7,12;w=32,64,160,384;b=1;g=16", "--json")
    assert code == 0
    a, b = json.loads(out)
    assert a["model_id"] == b["model_id"] and a["flops"] == b["flops"] == 397678568


def test_compatibility_rule_example_from_spec():
    """DDS widths + compatibility (docs/design.md §3): RegNetX-400MF raw widths [24, 64, 152, 392] become
    [32, 64, 160, 384]."""
    from regspace.design import make_compatible

    w, g = make_compatible([24, 64, 152, 392], [1, 1, 1, 1], [16, 16, 16, 16])
    assert w.tolist() == [32, 64, 160, 384] and g.tolist() == [16, 16, 16, 16]


def test_describe_other_context_changes_complexity(run_cli):
    code, out, _ = run_cli("describe", "RegNetX-200MF", "--preset", "cifar", "--json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["resolution"] == 32 and row["num_classes"] == 10 and row["flops"] < 199040872 / 10

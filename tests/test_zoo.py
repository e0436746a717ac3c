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


# ------------------------------------------------------------------ names (issue 21 §3)
SPELLINGS = [
    ("RegNetY-3.2GF", "RegNetY-3.2GF"),
    ("regnety_032", "RegNetY-3.2GF"),  # timm
    ("regnet_y_3_2gf", "RegNetY-3.2GF"),  # torchvision
    ("RegNetX-200MF", "RegNetX-200MF"),
    ("regnetx_002", "RegNetX-200MF"),
    ("regnet_x_400mf", "RegNetX-400MF"),
    ("regnet_x_8gf", "RegNetX-8.0GF"),
    ("RegNetX-4GF", "RegNetX-4.0GF"),
    ("regnety 1.6gf", "RegNetY-1.6GF"),
    ("regnety_120", "RegNetY-12GF"),
    ("regnety_032.ra_in1k", "RegNetY-3.2GF"),  # a timm weights tag names weights, not another network
    ("timm/regnetx_320", "RegNetX-32GF"),
]


@pytest.mark.parametrize("spelling,name", SPELLINGS)
def test_accepted_spellings(spelling, name):
    from regspace.zoo import zoo_name

    assert zoo_name(spelling) == name


def test_every_model_reads_back_from_its_usual_spellings():
    from regspace.zoo import ZOO, spellings, zoo_name

    for name in ZOO:
        assert [zoo_name(s) for s in spellings(name)] == [name] * 3, spellings(name)


@pytest.mark.parametrize(
    "unknown,closest",
    [
        ("regnety_030", "RegNetY-3.2GF"),  # not RegNetY-32GF, ten times larger
        ("RegNetY-3GF", "RegNetY-3.2GF"),
        ("regnet_y_128gf", "RegNetY-32GF"),  # torchvision's largest: the largest we know
        ("regnety_1280", "RegNetY-32GF"),
        ("regnetx-200mg", "RegNetX-200MF"),
        ("RegNetX-5GF", "RegNetX-4.0GF"),
        ("regnetz_040", None),  # no rule reads it: nearest spelling, whatever it is, but one
    ],
)
def test_unknown_names_suggest_the_closest_by_name_and_size(unknown, closest):
    from regspace.zoo import suggest, zoo_name

    assert zoo_name(unknown) is None
    assert suggest(unknown) == closest if closest else suggest(unknown) is not None


def test_describe_accepts_aliases_and_suggests(run_cli):
    code, out, err = run_cli("describe", "regnety_032", "regnet_y_3_2gf", "RegNetY-3.2GF", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert {r["name"] for r in rows} == {"RegNetY-3.2GF"} and len({r["model_id"] for r in rows}) == 1
    code, _, err = run_cli("describe", "regnety_030")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "RegNetY-3.2GF" in err

"""`--devices`: what each value means on each kind of machine, and never a silent fall-back to the CPU."""

import pytest

from regspace.errors import RegspaceError, UsageProblem
from regspace.train.devices import parse_devices, resolve_devices


def cuda(version, count):
    return lambda: (version, count)


def never():
    raise AssertionError("torch must not be asked on a machine without an NVIDIA driver")


@pytest.mark.parametrize(
    "spec,want",
    [(None, "auto"), ("auto", "auto"), ("CPU", "cpu"), ("0", (0,)), ("1", (1,)), ("0,1", (0, 1)), ("2, 0", (2, 0))],
)
def test_parse(spec, want):
    assert parse_devices(spec) == want


@pytest.mark.parametrize("spec", ["", "gpu", "-1", "0,0", "1.5", ","])
def test_parse_refuses_malformed_values(spec):
    with pytest.raises(UsageProblem, match="cannot read --devices"):
        parse_devices(spec)


def test_auto_without_a_driver_trains_on_the_cpu_and_says_so():
    said = []
    assert resolve_devices("auto", driver=False, cuda=never, say=said.append) == []
    assert said == ["no NVIDIA driver on this machine: training on the CPU"]


def test_cpu_is_the_cpu_even_with_gpus():
    assert resolve_devices("cpu", driver=True, cuda=cuda("12.8", 4)) == []


def test_gpus_by_index():
    assert resolve_devices("auto", driver=True, cuda=cuda("12.8", 2)) == [0, 1]
    assert resolve_devices("0", driver=True, cuda=cuda("12.8", 2)) == [0]  # "0" is GPU 0, not "no GPU"
    assert resolve_devices("1", driver=True, cuda=cuda("12.8", 2)) == [1]
    assert resolve_devices("1,0", driver=True, cuda=cuda("12.8", 2)) == [1, 0]
    with pytest.raises(RegspaceError, match="GPU 2 does not exist; torch sees 2"):
        resolve_devices("0,2", driver=True, cuda=cuda("12.8", 2))


@pytest.mark.parametrize("spec", ["auto", "0"])
def test_refused_when_torch_has_no_cuda(spec):
    with pytest.raises(RegspaceError, match="CPU-only build"):
        resolve_devices(spec, driver=True, cuda=cuda(None, 0))


@pytest.mark.parametrize("spec", ["auto", "0,1"])
def test_refused_when_torch_sees_no_gpu(spec, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(RegspaceError, match="torch sees no GPU \\(CUDA_VISIBLE_DEVICES=''\\)"):
        resolve_devices(spec, driver=True, cuda=cuda("12.8", 0))


def test_gpu_asked_on_a_machine_without_a_driver():
    with pytest.raises(RegspaceError, match="no NVIDIA driver"):
        resolve_devices("0", driver=False, cuda=never)


def test_bad_devices_value_fails_before_any_work(tmp_path, run_cli):
    assert (
        run_cli(
            "sample", "--space", "X_c", "-n", 1, "--preset", "mnist", "--flops", "0.5M:1.5M", "--store", tmp_path / "s"
        )[0]
        == 0
    )
    code, _, err = run_cli("train", "--store", tmp_path / "s", "--devices", "gpu0")
    assert code == 2 and "cannot read --devices 'gpu0'" in err and err.count("\n") == 1


def test_mixed_precisions_are_warned_about(tmp_path, run_cli):
    """compare warns when one recipe's results come from different precisions or device kinds; schema-1
    results carry both only inside the device text, and are read from there."""
    from regspace.store import Store
    from regspace.synthetic import make_synthetic_store

    make_synthetic_store(tmp_path / "s", ("X_a", "RegNetX"), n=6)
    st = Store.open(tmp_path / "s")
    ids = st.models().model_id.tolist()
    st.append_rows(
        "results",
        [
            {
                "model_id": m,
                "recipe_hash": "mixed",
                "status": "ok",
                "error": 10.0 + i,
                "device": "cuda:0 NVIDIA H200 (bf16-mixed)" if i % 2 else "cpu AMD EPYC (32-true)",
            }
            for i, m in enumerate(ids)
        ],
    )
    code, out, err = run_cli("compare", "--store", tmp_path / "s", "--recipe-hash", "mixed")
    assert code == 0
    assert "mix precisions (6 bf16-mixed, 6 32-true)" in err or "mix precisions (6 32-true, 6 bf16-mixed)" in err
    assert "mix device kinds" in err
    code, out, err = run_cli("compare", "--store", tmp_path / "s", "--recipe-hash", "synthetic000")
    assert code == 0 and "mix" not in err

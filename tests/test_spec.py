import importlib
import sys
import types

import pytest

from overparam.experiments import aggregate, spec


def rows(values):
    return [{"params": p, "metrics": {"err": e}} for p, e in values]


def test_aggregate_counts_and_orders_mixed_keys():
    data = rows([({"n": 4}, 1.0), ({"n": 4}, 3.0), ({"n": "big"}, 5.0), ({"n": None}, 0.0),
                 ({"n": 2}, 2.0)])
    out = aggregate(data, ["n"], "err")
    assert [s["n"] for s in out] == [None, 2, 4, "big"]
    four = out[2]
    assert (four["count"], four["mean"], four["median"]) == (2, 2.0, 2.0)
    assert four["sd"] == pytest.approx(2 ** 0.5)


def test_aggregate_refuses_a_parameter_named_like_a_statistic():
    with pytest.raises(ValueError, match="names of statistics"):
        aggregate(rows([({"mean": 1}, 1.0)]), ["mean"], "err")


def test_broken_spec_module_does_not_hide_the_others(monkeypatch):
    broken = types.ModuleType("overparam.experiments.papers.zz_broken")
    real_import = importlib.import_module

    def fake_import(name, *args):
        if name.endswith("zz_broken"):
            raise ImportError("no such thing")
        return real_import(name, *args)

    import pkgutil

    real_iter = pkgutil.iter_modules

    def fake_iter(path):
        yield from real_iter(path)
        yield pkgutil.ModuleInfo(None, "zz_broken", False)

    monkeypatch.setattr(spec, "_LOADED", False)
    monkeypatch.setattr(spec, "LOAD_ERRORS", {})
    monkeypatch.setattr(spec.importlib, "import_module", fake_import)
    monkeypatch.setattr(spec.pkgutil, "iter_modules", fake_iter)
    with pytest.warns(RuntimeWarning, match="zz_broken"):
        exps = spec.list_experiments()
    assert exps  # the working modules still registered their experiments
    assert "zz_broken" in spec.LOAD_ERRORS
    assert broken.__name__ not in sys.modules

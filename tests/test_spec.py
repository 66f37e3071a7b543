import importlib
import itertools
import sys
import types

import numpy as np
import pytest

from overparam.experiments import aggregate, spec
from overparam.experiments.spec import (
    Claim,
    NotEvaluated,
    Verdict,
    declare_claims,
    format_number,
    mean_cell_gap,
)


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


# --- Claims and verdicts ------------------------------------------------------------------------
def _gap_claim(**kw):
    return Claim("gap", "IR within 0.05 of BP per cell",
                 lambda rows, _: mean_cell_gap(rows, "ir", "bp", ["M"]),
                 target=0.0, tolerance=0.05, partly=0.15, **kw)


def _cells(gap):
    # Two cells, BP succeeds in half the trials, IR off by `gap` in each cell.
    return [{"params": {"M": m}, "metrics": {"bp": b, "ir": b + gap}}
            for m in (5, 10) for b in (0.0, 1.0)]


@pytest.mark.parametrize("gap, verdict", [(0.0, Verdict.REPRODUCED), (0.04, Verdict.REPRODUCED),
                                          (0.1, Verdict.PARTLY), (0.5, Verdict.NOT_REPRODUCED)])
def test_claim_verdict_from_rows(gap, verdict):
    outcome = _gap_claim().evaluate(_cells(gap))
    assert outcome.verdict is verdict
    assert outcome.measured == pytest.approx(gap)
    assert "over 2 cells" in outcome.detail


@pytest.mark.parametrize("op, target, measured, verdict", [
    (">=", 2.0, 2.5, Verdict.REPRODUCED), (">=", 2.0, 1.5, Verdict.PARTLY),
    (">=", 2.0, 0.5, Verdict.NOT_REPRODUCED), ("==", 1.0, 1.05, Verdict.REPRODUCED),
    ("==", 1.0, 0.7, Verdict.PARTLY), ("==", 1.0, 1.7, Verdict.NOT_REPRODUCED)])
def test_claim_operators(op, target, measured, verdict):
    claim = Claim("c", "s", lambda rows, _: measured, op=op, target=target,
                  tolerance=0.1 if op == "==" else 0.0, partly=0.5 if op == "==" else 1.0)
    assert claim.evaluate([{}]).verdict is verdict


def test_claim_bounds_are_inclusive_despite_rounding():
    # 0.8 - 0.5 is 0.30000000000000004 in floats: still within partly = 0.3.
    claim = Claim("c", "s", lambda rows, _: 0.5, op=">=", target=0.8, partly=0.3)
    assert claim.evaluate([{}]).verdict is Verdict.PARTLY
    below = Claim("c", "s", lambda rows, _: 0.49, op=">=", target=0.8, partly=0.3)
    assert below.evaluate([{}]).verdict is Verdict.NOT_REPRODUCED


def test_claim_not_evaluated_with_a_reason():
    few = _gap_claim(min_rows=10).evaluate(_cells(0.0))
    assert few.verdict is Verdict.NOT_EVALUATED and "trials stored: 4, needed: 10" in few.detail

    def undecided(rows, summary):
        raise NotEvaluated("one trial per cell in the quick run")

    out = Claim("u", "s", undecided).evaluate([{}])
    assert (out.verdict, out.detail) == (Verdict.NOT_EVALUATED,
                                         "one trial per cell in the quick run")
    missing = Claim("k", "s", lambda rows, s: s["slope"]).evaluate([{}], {})
    assert missing.verdict is Verdict.NOT_EVALUATED and "KeyError" in missing.detail
    nan = Claim("n", "s", lambda rows, s: float("nan")).evaluate([{}])
    assert nan.verdict is Verdict.NOT_EVALUATED
    assert Claim("e", "s", lambda rows, s: 1.0).evaluate([]).verdict is Verdict.NOT_EVALUATED


def test_claim_validation_and_criterion():
    with pytest.raises(ValueError, match="op"):
        Claim("c", "s", lambda r, s: 0, op="<")
    with pytest.raises(ValueError, match="partly"):
        Claim("c", "s", lambda r, s: 0, tolerance=0.2, partly=0.1)
    assert _gap_claim().criterion == "≤ 0.05 (partly ≤ 0.15)"
    assert Claim("c", "s", lambda r, s: 0, op=">=", target=10.0, partly=8.0,
                 unit="dB").criterion == "≥ 10 dB (partly ≥ 2 dB)"
    assert Claim("c", "s", lambda r, s: 0, op="==", target=-0.5, tolerance=0.1,
                 partly=0.2).criterion == "-0.5 ± 0.1 (partly ± 0.2)"
    with pytest.raises(ValueError, match="repeated"):
        declare_claims("t-dup", _gap_claim(), _gap_claim())


def test_every_registered_experiment_declares_claims():
    exps = spec.list_experiments()
    papers = {e.paper for e in exps if not {"demo", "example"} & set(e.tags)}
    assert len(papers) == 5  # the papers; "example" experiments (imaging-dct) reproduce none
    for exp in exps:
        assert exp.claims, f"{exp.name} declares no claim"
        for claim in exp.claims:
            assert claim.statement and claim.name
            # With no rows, every claim says "not evaluated" instead of failing.
            assert claim.evaluate([], {}).verdict is Verdict.NOT_EVALUATED


def test_declared_phase_transition_claims_on_synthetic_rows():
    from overparam.experiments.papers.more_is_less import PHASE_TRANSITION

    def rows(ir_of):
        out = []
        for reading, sign in itertools.product(("product", "per-factor"), ("positive", "signed")):
            for m in (4, 12, 20):
                for t in range(4):
                    bp = float(m >= 12 and t < 3)
                    ir = ir_of(bp, t) if reading == "product" else bp
                    out.append({"params": {"sign": sign, "M": m, "s": 2,
                                           "init_reading": reading}, "trial": t,
                                "metrics": {"success_bp": bp, "success_ir2": ir,
                                            "success_ir3": bp,
                                            "success_min-l2": float(m == 20)}})
        return out

    claims = {c.name: c for c in PHASE_TRANSITION.claims}
    same = {n: c.evaluate(rows(lambda bp, t: bp)).verdict for n, c in claims.items()}
    assert set(same.values()) == {Verdict.REPRODUCED}
    # IR L=2 succeeds in trial 0 of the M = 4 cells where BP fails: 2 of 6 cells off by 1/4.
    near = claims["ir2-as-bp-product"].evaluate(rows(lambda bp, t: 1.0 if t == 0 else bp))
    assert near.verdict is Verdict.PARTLY and near.measured == pytest.approx(1 / 12)
    # IR L=2 always succeeds: off by 1 at M = 4 and 1/4 elsewhere, mean 1/2.
    far = claims["ir2-as-bp-product"].evaluate(rows(lambda bp, t: 1.0))
    assert far.verdict is Verdict.NOT_REPRODUCED and far.measured == pytest.approx(0.5)
    assert claims["ir3-as-bp-product"].evaluate(rows(lambda bp, t: 1.0)).verdict is (
        Verdict.REPRODUCED)
    assert claims["ir2-as-bp-per-factor"].evaluate(rows(lambda bp, t: 1.0)).verdict is (
        Verdict.REPRODUCED)


# --- Numbers for people ------------------------------------------------------------------------
@pytest.mark.parametrize("value, text", [
    (0.123456789, "0.123"), (1234.5678, "1230"), (0.5, "0.5"), (2.0, "2"), (-0.0123456, "-0.0123"),
    (1.23456e-7, "1.23 × 10⁻⁷"), (6.02e23, "6.02 × 10²³"), (20000, "20000"), (True, "yes"),
    (None, "—"), (float("nan"), "NaN"), (float("inf"), "∞"), (0.0, "0"),
    (np.float32(0.1), "0.1"), (np.int64(7), "7")])
def test_format_number(value, text):
    assert format_number(value) == text


def test_format_number_units():
    assert format_number(3.14159, "dB") == "3.14 dB"
    assert format_number(12, "s") == "12 s"

import numpy as np
import pytest

from overparam.stopping import DivergenceError, PathControl, StoppingRule, StopReason


def test_monitor_reasons():
    mon = StoppingRule(max_iter=5, tol=1e-3, stagnation_tol=0).monitor(y_norm=1.0)
    assert mon.update(0, 1.0, 1.0) is None
    assert mon.update(1, 0.5, 1e-4) is StopReason.CONVERGED
    mon = StoppingRule(max_iter=3, tol=0, stagnation_tol=0).monitor(1.0)
    assert [mon.update(i, 1.0 / (i + 1), 1.0) for i in range(4)][-1] is StopReason.MAX_ITER


def test_stagnation():
    mon = StoppingRule(tol=0, stagnation_tol=1e-6, patience=3).monitor(1.0)
    reasons = [mon.update(i, 1.0, 1.0) for i in range(5)]
    assert reasons[3] is StopReason.STAGNATED


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e12])
def test_divergence_raises(bad):
    mon = StoppingRule().monitor(1.0)
    mon.update(0, 1.0, 1.0)
    assert mon.is_divergent(bad)
    with pytest.raises(DivergenceError):
        mon.update(1, bad, 1.0)


def test_rule_validates_arguments():
    with pytest.raises(ValueError):
        StoppingRule(tol=-1)
    with pytest.raises(TypeError):
        StoppingRule(max_iter=2.5)
    with pytest.raises(ValueError):
        StoppingRule(discrepancy=0.0)


def test_path_control_fills_rule():
    rule = PathControl(stop_time=3.0, discrepancy=0.5).apply(StoppingRule(max_iter=7))
    assert (rule.max_flow_time, rule.discrepancy, rule.max_iter) == (3.0, 0.5, 7)
    assert PathControl().apply(StoppingRule()) == StoppingRule()

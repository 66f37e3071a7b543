"""Toy experiments that exercise the runner, store and report (tag ``"demo"``).

They reproduce no paper and ``overparam reproduce`` leaves them out; they are cheap stand-ins
for the real specs in tests and in the documentation's examples.

``demo-power-law``
    Mean of ``|z|^2`` over ``n`` standard normals has standard error ∝ n^{-1/2}: a log-log slope
    to fit, like the papers' scaling laws.
``demo-sleep``
    Each trial sleeps ``delay`` seconds and returns its seed: for resume and progress tests.
"""

from __future__ import annotations

import time

import numpy as np

from .. import plotting
from ..spec import Claim, Experiment, declare_claims, register, summary_value

__all__ = ["POWER_LAW", "SLEEP"]


def _power_law_trial(params: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n = int(params["n"])
    z = rng.standard_normal((200, n))
    estimates = (z**2).mean(axis=1)  # 200 estimates of E|z|^2 = 1
    return {"error": float(np.abs(estimates - 1.0).mean()),
            "curve": [float(v) for v in np.sort(estimates)[::40]]}


def _power_law_plot(rows: list, path) -> None:
    fig, ax = plotting.new_figure()
    plotting.stat_curve(ax, rows, x="n", metric="error", stat="median", label="median, IQR")
    stats = plotting.grouped_stats(rows, "n", "error")
    plotting.loglog_fit(ax, [s["n"] for s in stats], [s["median"] for s in stats])
    plotting.finish(ax, xlabel="n (samples per estimate)", ylabel="mean absolute error",
                    title="Error of a sample mean", log="xy")
    plotting.save(fig, path)


def _power_law_summary(rows: list) -> dict:
    stats = plotting.grouped_stats(rows, "n", "error")
    slope, _ = plotting.fit_power_law([s["n"] for s in stats], [s["median"] for s in stats])
    return {"slope": round(slope, 3), "error at largest n": stats[-1]["median"]}


POWER_LAW = register(Experiment(
    name="demo-power-law",
    paper="demo",
    figure="toy",
    claim="The error of a sample mean decays like n^(-1/2): log-log slope -0.5.",
    grid={"n": [4, 8, 16, 32, 64, 128, 256]},
    quick_grid={"n": [4, 16, 64, 256]},
    trials=5,
    quick_trials=2,
    run_trial=_power_law_trial,
    plot=_power_law_plot,
    summarize=_power_law_summary,
    seed=1,
    description="Toy scaling law for the runner's tests.",
    tags=("demo",),
))


def _sleep_trial(params: dict, seed: int) -> dict:
    time.sleep(float(params["delay"]))
    if params.get("fail") and seed % 2 == 0:
        raise RuntimeError(f"demo failure for seed {seed}")
    return {"seed_mod_97": seed % 97}


SLEEP = register(Experiment(
    name="demo-sleep",
    paper="demo",
    figure="toy",
    claim="Each trial waits `delay` seconds.",
    grid={"delay": [0.05], "cell": list(range(20))},
    quick_grid={"delay": [0.0], "cell": [0, 1, 2]},
    trials=2,
    quick_trials=2,
    run_trial=_sleep_trial,
    description="Trials that only sleep, for the resume and progress tests.",
    tags=("demo",),
))


# --- Claims checked by the report -------------------------------------------------------------
declare_claims(
    POWER_LAW,
    Claim("slope", "Log-log slope of the median error against n is -1/2 (± 0.1; partly ± 0.2).",
          summary_value("slope"), op="==", target=-0.5, tolerance=0.1, partly=0.2))
declare_claims(
    SLEEP,
    Claim("waits", "No trial takes less than its `delay`: min(time − delay) ≥ 0 s.",
          lambda rows, _: min(r["time"] - float(r["params"]["delay"]) for r in rows),
          op=">=", target=0.0, unit="s"))

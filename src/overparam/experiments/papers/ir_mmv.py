"""Jayalal & Kalyani, tuning-free MMV recovery by implicit regularization (IR-MMV), section 6.

``ir-mmv-balance``
    6.1: rows ``1, 2, 3 × 1_L``; ``g_i²/2`` against ``||V_i||²`` over the run, and the rows
    learned one at a time, largest first.
``ir-mmv-init-scale``
    6.2: ``alpha_g ∈ {1e-2, 1e-3, 1e-4}``: loss and row-norm curves.
``ir-mmv-error-vs-m`` / ``ir-mmv-error-vs-k``
    6.3: relative error ``||X - X̂||_F² / ||X||_F²`` at 40 dB against ``M`` and against ``K``,
    IR-MMV against M-OMP, M-SP, M-FOCUSS and MultiTaskLassoCV. Each trial solves a batch of
    problems at once (``batch`` parameter, 20 as in the paper) with the batched solver.
``ir-mmv-digits``
    Appendix D on scikit-learn's digits (MNIST is not shipped): overdetermined pixels as in
    the paper, and an underdetermined setting in a 2-D DCT basis. IR-MMV runs from the
    library's default init (``V(0) = 0``, ``alpha_g = 1e-2``) and, as a second series, from
    the paper's (``V(0) = alpha_V 1``, ``alpha_g = 1e-4``); each init in a cell of its own,
    on the same problem.

Every setting is run twice: the paper's ``M=50, N=25`` (overdetermined, ``M > N``) and the
underdetermined ``M=25, N=50``. All IR-MMV runs use the safe adaptive step (the paper's fixed
``eta = 1e-2`` diverges on its own setting) and the flow-time clock of
:func:`overparam.solvers.ir_mmv`; curves are plotted against that clock.
"""

from __future__ import annotations

import time

import numpy as np

from ...baselines.mmv import m_focuss, m_sp, somp
from ...datasets.mmv import (
    dct2_basis,
    load_digit_columns,
    make_mmv_batch,
    make_mmv_problem,
    normalized_gaussian_matrix,
)
from ...metrics import psnr
from ...solvers.mmv import ir_mmv
from ...solvers.result import History
from ...stopping import StoppingRule
from .. import plotting
from ..spec import Claim, Experiment, NotEvaluated, cell_seed, declare_claims, register, share

__all__ = ["BALANCE", "DIGITS", "ERROR_VS_K", "ERROR_VS_M", "INIT_SCALE"]

PAPER = "ir-mmv-jayalal-kalyani"
SETTINGS = {"M=50, N=25 (paper, overdetermined)": (50, 25),
            "M=25, N=50 (underdetermined)": (25, 50)}
METHODS = ("IR-MMV", "M-OMP", "M-SP", "M-FOCUSS", "MultiTaskLassoCV")


def _curve_index(times, n_points: int = 100) -> np.ndarray:
    """At most ``n_points`` indices of a record, spread evenly in log time (first and last kept)."""
    t = np.asarray(times, dtype=float)
    if t.size <= n_points:
        return np.arange(t.size)
    pos = t[t > 0]
    targets = np.geomspace(pos[0], t[-1], n_points - 1)
    idx = np.unique(np.concatenate([[0], np.searchsorted(t, targets).clip(0, t.size - 1),
                                    [t.size - 1]]))
    return idx


def _learn_times(times, row_norms, targets, fraction=0.5):
    """First time each row's norm reaches ``fraction`` of its target (inf if never)."""
    out = []
    for k, target in enumerate(targets):
        hit = np.flatnonzero(row_norms[:, k] >= fraction * target)
        out.append(float(times[hit[0]]) if hit.size else float("inf"))
    return out


def _traced_run(p, init_scale, max_iter):
    """One IR-MMV run recording the support rows' g²/2, ||V||², ||X_i|| and the loss."""
    rows = np.flatnonzero(p.meta["support"])
    every = max(1, max_iter // 3000)
    hist = History(every=every, quantities={
        "half_g2": lambda pr, x: 0.5 * pr[0][rows] ** 2,
        "v2": lambda pr, x: np.sum(pr[1][rows] ** 2, axis=1),
        "row_norm": lambda pr, x: np.linalg.norm(x[rows], axis=1),
        "off_norm": lambda pr, x: np.max(np.linalg.norm(np.delete(x, rows, axis=0), axis=1)),
    })
    res = ir_mmv(p.operator, p.y, init_scale=init_scale, history=hist,
                 stopping=StoppingRule(max_iter=max_iter))
    return res, hist.as_dict()


def _rel_err(estimate, truth):
    return float(np.sum((estimate - truth) ** 2) / np.sum(truth ** 2))


# --- 6.1 balancedness and incremental learning -----------------------------------------------

def _balance_trial(params, seed):
    M, N = SETTINGS[params["setting"]]
    p = make_mmv_problem(M, N, params["L"], 3, row_values="ramp", random_state=seed)
    res, h = _traced_run(p, params["init_scale"], params["max_iter"])
    t = h["flow_time"]
    targets = np.linalg.norm(p.truth[p.meta["support"]], axis=1)  # rows 1, 2, 3 × 1_L (ascending)
    learn = _learn_times(t, h["row_norm"], targets)
    drift = np.abs((h["half_g2"] - h["v2"]) - (h["half_g2"][0] - h["v2"][0]))
    idx = _curve_index(t)
    return {
        "rel_error": _rel_err(res.coef, p.truth),
        "n_iter": res.n_iter, "stop_reason": str(res.stop_reason),
        "balance_drift": float(drift.max() / h["half_g2"].max()),
        "learn_time_x1": learn[0], "learn_time_x2": learn[1], "learn_time_x3": learn[2],
        "learned_largest_first": bool(learn[2] < learn[1] < learn[0] < np.inf),
        "smallest_row_last": bool(max(learn[1], learn[2]) < learn[0] < np.inf),
        "t": t[idx].tolist(),
        **{f"half_g2_{k + 1}": h["half_g2"][idx, k].tolist() for k in range(3)},
        **{f"v2_{k + 1}": h["v2"][idx, k].tolist() for k in range(3)},
        **{f"row_norm_{k + 1}": h["row_norm"][idx, k].tolist() for k in range(3)},
        "off_norm": np.asarray(h["off_norm"])[idx].tolist(),
    }


def _balance_plot(rows, path):
    settings = sorted({r["params"]["setting"] for r in rows})
    fig, axes = plotting.new_figure(2, len(settings), squeeze=False)
    for j, setting in enumerate(settings):
        trials = sorted((r for r in rows if r["params"]["setting"] == setting),
                        key=lambda r: r["metrics"]["rel_error"])
        r = trials[(len(trials) - 1) // 2]["metrics"]  # the trial of median error
        t = np.asarray(r["t"])
        keep = t > 0
        for k in range(3):
            line, = axes[0, j].plot(t[keep], np.asarray(r[f"half_g2_{k + 1}"])[keep],
                                    label=f"g²/2, row {k + 1}×1")
            axes[0, j].plot(t[keep], np.asarray(r[f"v2_{k + 1}"])[keep], "--",
                            color=line.get_color(), label=f"‖V_i‖², row {k + 1}×1")
            line, = axes[1, j].plot(t[keep], np.asarray(r[f"row_norm_{k + 1}"])[keep],
                                    label=f"‖X_i‖, row {k + 1}×1")
        axes[1, j].plot(t[keep], np.maximum(np.asarray(r["off_norm"])[keep], 1e-300), ":",
                        color="gray", label="largest row off the support")
        plotting.finish(axes[0, j], xlabel="flow time of 1/(2M)‖AX−Y‖²",
                        ylabel="g_i²/2 and ‖V_i‖²", title=f"{setting}\n(trial of median error)",
                        log="xy")
        plotting.finish(axes[1, j], xlabel="flow time of 1/(2M)‖AX−Y‖²", ylabel="‖X_i‖₂",
                        log="xy")
        axes[1, j].set_ylim(bottom=1e-6)
    plotting.save(fig, path)


def _last(m):
    return max(m["learn_time_x2"], m["learn_time_x3"]) < m["learn_time_x1"] < np.inf


def _balance_summary(rows):
    out = {}
    for setting in sorted({r["params"]["setting"] for r in rows}):
        ms = [r["metrics"] for r in rows if r["params"]["setting"] == setting]
        out[setting] = {
            "max relative balance drift": max(m["balance_drift"] for m in ms),
            "rows learned largest first": f"{sum(m['learned_largest_first'] for m in ms)}"
                                          f"/{len(ms)}",
            "1·1_L row learned last": f"{sum(_last(m) for m in ms)}/{len(ms)}",
            "median learn times (x3, x2, x1)": [float(np.median([m[f"learn_time_x{k}"]
                                                                 for m in ms]))
                                                for k in (3, 2, 1)],
            "median relative error": float(np.median([m["rel_error"] for m in ms])),
        }
    return out


BALANCE = register(Experiment(
    name="ir-mmv-balance",
    paper=PAPER,
    figure="Fig. 1a (section 6.1)",
    claim="g_i²/2 and ||V_i||² stay equal for every row over the whole run (Lemma 5.1), and "
          "the rows of X are learned one at a time (incremental learning): larger rows grow "
          "faster, so the 1·1_L row comes after the 2·1_L and 3·1_L rows.",
    grid={"setting": list(SETTINGS), "L": [100], "init_scale": [1e-4], "max_iter": [300_000]},
    quick_grid={"setting": list(SETTINGS), "L": [100], "init_scale": [1e-3],
                "max_iter": [30_000]},
    trials=5,
    quick_trials=1,
    run_trial=_balance_trial,
    trial_seconds=60.0,  # scheduling hint: CPU s per trial (2026-12-02)
    plot=_balance_plot,
    summarize=_balance_summary,
    seed=61,
    description="IR-MMV on rows 1, 2, 3 × 1_L: row balance and the order rows are learned.",
))


# --- 6.2 effect of the initialization ---------------------------------------------------------

def _init_trial(params, seed):
    M, N = SETTINGS[params["setting"]]
    p = make_mmv_problem(M, N, params["L"], 3, row_values="ramp", random_state=seed)
    res, h = _traced_run(p, params["init_scale"], params["max_iter"])
    t = h["flow_time"]
    targets = np.linalg.norm(p.truth[p.meta["support"]], axis=1)
    learn = _learn_times(t, h["row_norm"], targets)
    idx = _curve_index(t)
    return {
        "final_loss": float(res.info["final_loss"]), "rel_error": _rel_err(res.coef, p.truth),
        "n_iter": res.n_iter, "stop_reason": str(res.stop_reason),
        "first_row_time": min(learn), "last_row_time": max(learn),
        "off_support_norm": float(h["off_norm"][-1]),
        "t": t[idx].tolist(), "loss": np.asarray(h["loss"])[idx].tolist(),
        **{f"row_norm_{k + 1}": h["row_norm"][idx, k].tolist() for k in range(3)},
    }


def _init_plot(rows, path):
    settings = sorted({r["params"]["setting"] for r in rows})
    fig, axes = plotting.new_figure(2, len(settings), squeeze=False)
    for j, setting in enumerate(settings):
        for r in sorted((r for r in rows if r["params"]["setting"] == setting
                         and r["trial"] == 0), key=lambda r: -r["params"]["init_scale"]):
            m, a = r["metrics"], r["params"]["init_scale"]
            t = np.asarray(m["t"])
            keep = t > 0
            line, = axes[0, j].plot(t[keep], np.asarray(m["loss"])[keep], label=f"α_g={a:g}")
            for k in range(3):
                axes[1, j].plot(t[keep], np.asarray(m[f"row_norm_{k + 1}"])[keep],
                                color=line.get_color(), ls=("-", "--", ":")[k],
                                label=f"α_g={a:g}, row {k + 1}×1" if k == 2 or a == 1e-2
                                else None)
        plotting.finish(axes[0, j], xlabel="flow time of 1/(2M)‖AX−Y‖²",
                        ylabel="loss ‖Y−AX‖²_F", title=setting, log="xy")
        plotting.finish(axes[1, j], xlabel="flow time of 1/(2M)‖AX−Y‖²",
                        ylabel="row norm ‖X_i‖₂", log="xy")
        axes[1, j].set_ylim(bottom=1e-4)
    plotting.save(fig, path)


def _init_summary(rows):
    out = {}
    for r in rows:
        key = f"{r['params']['setting']}, alpha_g={r['params']['init_scale']:g}"
        out.setdefault(key, []).append(r["metrics"])
    return {k: {"median final loss": float(np.median([m["final_loss"] for m in ms])),
                "median relative error": float(np.median([m["rel_error"] for m in ms])),
                "median time first row learned": float(np.median([m["first_row_time"]
                                                                   for m in ms])),
                "median iterations": float(np.median([m["n_iter"] for m in ms]))}
            for k, ms in out.items()}


INIT_SCALE = register(Experiment(
    name="ir-mmv-init-scale",
    paper=PAPER,
    figure="Fig. 1b and Fig. 2 (section 6.2)",
    claim="Smaller initializations converge to a solution with lower final loss; smaller "
          "values grow the row norms more slowly and gradually, larger ones faster.",
    grid={"setting": list(SETTINGS), "init_scale": [1e-2, 1e-3, 1e-4], "L": [100],
          "max_iter": [200_000]},
    quick_grid={"setting": list(SETTINGS), "init_scale": [1e-2, 1e-3], "L": [100],
                "max_iter": [20_000]},
    trials=3,
    quick_trials=1,
    run_trial=_init_trial,
    trial_seconds=1.0,  # scheduling hint: CPU s per trial (2026-12-02)
    plot=_init_plot,
    summarize=_init_summary,
    seed=62,
    description="IR-MMV loss and row-norm curves for alpha_g in {1e-2, 1e-3, 1e-4}.",
))


# --- 6.3 relative error against M and K (batched) ---------------------------------------------

def _compare_batch(params, seed):
    """All methods on ``batch`` problems; IR-MMV solves the whole batch in one call."""
    from ...baselines.mmv import MultiTaskLassoCVRegressor

    M, N = SETTINGS[params["setting"]] if "setting" in params else (params["M"], params["N"])
    K, B = params["K"], params["batch"]
    prob = make_mmv_batch(B, M, N, params["L"], K, snr=40.0, random_state=seed)
    errors = {name: [] for name in METHODS}
    start = time.perf_counter()
    res = ir_mmv(prob.operator, prob.y, stopping=StoppingRule(max_iter=params["max_iter"]))
    ir_time = time.perf_counter() - start
    errors["IR-MMV"] = [_rel_err(res.coef[b], prob.truth[b]) for b in range(B)]
    for b in range(B):
        A, Y, X = prob.operator[b], prob.y[b], prob.truth[b]
        sigma2 = float(np.var(prob.noise[b]))  # M-FOCUSS: lambda = noise variance
        errors["M-OMP"].append(_rel_err(somp(A, Y, K)[0], X))
        errors["M-SP"].append(_rel_err(m_sp(A, Y, K)[0], X))
        errors["M-FOCUSS"].append(_rel_err(m_focuss(A, Y, lam=sigma2)[0], X))
        cv = MultiTaskLassoCVRegressor(random_state=0).fit(A, Y)
        errors["MultiTaskLassoCV"].append(_rel_err(cv.signal_, X))  # X: signal_, (N, L)
    out = {"ir_time": ir_time, "ir_iterations_max": int(res.n_iter.max()),
           "ir_stop_reasons": sorted({str(r) for r in res.stop_reason})}
    for name, errs in errors.items():
        out[f"{name}_mean"] = float(np.mean(errs))
        out[f"{name}_sd"] = float(np.std(errs, ddof=1)) if len(errs) > 1 else 0.0
        out[f"{name}_errors"] = [float(e) for e in errs]
    return out


def _pooled(rows, x, where):
    """Per value of ``x``: every problem's error per method (pooled over stored trials)."""
    table: dict = {}
    for r in rows:
        if all(r["params"][k] == v for k, v in where.items()):
            cell = table.setdefault(r["params"][x], {m: [] for m in METHODS})
            for m in METHODS:
                cell[m] += r["metrics"][f"{m}_errors"]
    return dict(sorted(table.items()))


def _compare_plot(x, panels):
    def plot(rows, path):
        fig, axes = plotting.new_figure(1, len(panels), squeeze=False)
        for ax, (title, where) in zip(axes[0], panels, strict=True):
            table = _pooled(rows, x, where)
            if not table:
                continue
            xs = np.array(list(table), dtype=float)
            for m in METHODS:
                mean = np.array([np.mean(c[m]) for c in table.values()])
                sd = np.array([np.std(c[m], ddof=1) if len(c[m]) > 1 else 0.0
                               for c in table.values()])
                plotting.band(ax, xs, mean, np.maximum(mean - sd, mean / 10), mean + sd,
                              label=m)
            plotting.finish(ax, xlabel={"M": "M (measurements)", "K": "K (active rows)"}[x],
                            ylabel="relative error ‖X−X̂‖²_F/‖X‖²_F (mean ± sd)",
                            title=title, log="y")
        plotting.save(fig, path)
    return plot


def _compare_summary():
    def summarize(rows):
        out = {}
        for r in rows:
            M, N = SETTINGS.get(r["params"].get("setting"), (r["params"].get("M"),
                                                              r["params"].get("N")))
            key = f"M={M}, N={N}, K={r['params']['K']}"
            cell = out.setdefault(key, {m: [] for m in METHODS})
            for m in METHODS:
                cell[m] += r["metrics"][f"{m}_errors"]
        return {k: {m: f"{np.mean(v):.2e} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.1e}"
                    for m, v in cell.items()} for k, cell in out.items()}
    return summarize


_COMPARE_CLAIM = ("At 40 dB SNR, IR-MMV's relative error is comparable to M-OMP, M-SP and "
                  "M-FOCUSS, which are given K (OMP, SP) or the noise variance (FOCUSS), "
                  "while IR-MMV is told neither.")

ERROR_VS_M = register(Experiment(
    name="ir-mmv-error-vs-m",
    paper=PAPER,
    figure="Fig. 3 (section 6.3), against M",
    claim=_COMPARE_CLAIM,
    grid={"N": [25, 50], "M": [10, 15, 20, 25, 30, 40, 50], "K": [3], "L": [100],
          "batch": [20], "max_iter": [20_000]},
    quick_grid={"N": [25, 50], "M": [15, 25, 50], "K": [3], "L": [100], "batch": [3],
                "max_iter": [5_000]},
    trials=1,
    quick_trials=1,
    run_trial=_compare_batch,
    trial_seconds=19.0,  # scheduling hint: CPU s per trial (2026-12-02)
    plot=_compare_plot("M", [("N=25 (paper)", {"N": 25}), ("N=50", {"N": 50})]),
    summarize=_compare_summary(),
    seed=631,
    description="Relative error vs M at 40 dB, 20 problems per cell solved as one batch.",
))

ERROR_VS_K = register(Experiment(
    name="ir-mmv-error-vs-k",
    paper=PAPER,
    figure="Fig. 3 (section 6.3), against K",
    claim=_COMPARE_CLAIM,
    grid={"setting": list(SETTINGS), "K": [1, 2, 3, 4, 6, 8], "L": [100], "batch": [20],
          "max_iter": [20_000]},
    quick_grid={"setting": list(SETTINGS), "K": [2, 5], "L": [100], "batch": [3],
                "max_iter": [5_000]},
    trials=1,
    quick_trials=1,
    run_trial=_compare_batch,
    trial_seconds=45.0,  # scheduling hint: CPU s per trial (2026-12-02)
    plot=_compare_plot("K", [(name, {"setting": name}) for name in SETTINGS]),
    summarize=_compare_summary(),
    seed=632,
    description="Relative error vs K at 40 dB, 20 problems per cell solved as one batch.",
))


# --- digits (appendix D, with scikit-learn's digits in place of MNIST) ------------------------

DIGIT_SETTINGS = {
    "overdetermined, pixels (M = 1.31 N, as the paper's 1024 x 784)": "pixels",
    "underdetermined, 2-D DCT (M = 5N/8, images cut to their K = 16 strongest DCT rows)": "dct",
}
N_SHOWN = 5


def _digits_problem(setting, n_images, seed):
    """Sensing matrix, measurements, truth and synthesis map of one digits setting."""
    X, _ = load_digit_columns(n_images)
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    if DIGIT_SETTINGS[setting] == "pixels":
        A = normalized_gaussian_matrix(round(n * 1024 / 784), n, rng)
        return A, A @ X, X, X, (lambda Z: Z)
    psi = dct2_basis((8, 8))
    coef = psi.T @ X
    keep = np.argsort(np.linalg.norm(coef, axis=1))[::-1][:16]
    sparse = np.zeros_like(coef)
    sparse[keep] = coef[keep]  # exactly row-sparse in the DCT basis
    A = normalized_gaussian_matrix(5 * n // 8, n, rng)
    truth = psi @ sparse
    return A @ psi, A @ truth, truth, sparse, (lambda Z: psi @ Z)


#: IR-MMV's two series in the digits experiment, as ``init: (label, alpha_g)``: the library's
#: default (``MMVRegressor``: ``V(0) = 0``, which reaches rows of any sign and direction, and
#: ``init_scale="auto"`` = 1e-2), and the paper's Algorithm 1 (``V(0) = alpha_V 1``,
#: ``alpha_g = 1e-4``). Both are the plain path of :func:`ir_mmv`, with no refit.
DIGIT_INITS = {"zero": ("IR-MMV", 1e-2), "ones": ("IR-MMV (paper init)", 1e-4)}


def _digits_ir_runs(A, Y, truth, synth, params):
    """IR-MMV from each init in ``params["inits"]``: estimates, times, iterations, PSNR curves."""
    out = {}
    for init in params.get("inits", ("ones",)):
        label, scale = DIGIT_INITS[init]
        start = time.perf_counter()
        hist = History(every=max(1, params["max_iter"] // 50), quantities={
            "psnr": lambda p, x: psnr(synth(x), truth, data_range=1.0)})
        res = ir_mmv(A, Y, init=init, init_scale=scale, history=hist,
                     stopping=StoppingRule(max_iter=params["max_iter"]))
        out[label] = (res, time.perf_counter() - start, hist)
    return out


def _ir_suffix(name):
    """Metric-name suffix of an IR-MMV series: "" for the default init (the stored names)."""
    return "" if name == "IR-MMV" else "_paper_init"


def _problem_seed(params, seed):
    """The seed of the problem: that of the same trial of the cell running both inits.

    Each init runs in a cell of its own (two trials of half the length in place of one: the
    longest trial of a reproduction halves), and both solve the problem that a cell with
    ``inits = ("zero", "ones")`` solved, whatever init a cell runs. A seed that is no cell's
    (a direct call) is used as it is.
    """
    both = {**params, "inits": tuple(DIGIT_INITS)}
    for trial in range(1000):
        if cell_seed(DIGITS.seed, params, trial) == seed:
            return cell_seed(DIGITS.seed, both, trial)
    return seed


def _merged(rows):
    """One row per setting and trial with the metrics of its inits' cells together (the
    baselines, run in each of them on the same problem, are the same)."""
    out = {}
    for r in rows:
        cell = {k: v for k, v in r["params"].items() if k != "inits"}
        key = (repr(sorted(cell.items())), r["trial"])
        if key in out:
            out[key]["metrics"].update(r["metrics"])
        else:
            out[key] = {**r, "params": cell, "metrics": dict(r["metrics"])}
    return list(out.values())


def _digits_trial(params, seed):
    A, Y, truth, target, synth = _digits_problem(params["setting"], params["n_images"],
                                                 _problem_seed(params, seed))
    energy = np.sort(np.linalg.norm(target, axis=1) ** 2)[::-1]
    K = int(np.searchsorted(np.cumsum(energy) / energy.sum(), 0.99) + 1)  # oracle for OMP/SP
    estimates, times, out = {}, {}, {"K_oracle": K}
    for name, (res, seconds, hist) in _digits_ir_runs(A, Y, truth, synth, params).items():
        estimates[name], times[name] = res.coef, seconds
        suffix = _ir_suffix(name)
        out.update({f"ir_iterations{suffix}": res.n_iter,
                    f"ir_stop_reason{suffix}": str(res.stop_reason),
                    f"ir_psnr_iteration{suffix}": [int(i) for i in hist.iteration],
                    f"ir_psnr_curve{suffix}": [float(v) for v in hist.values["psnr"]]})
    for name, fit in (("M-OMP", lambda: somp(A, Y, K)[0]),
                      ("M-SP", lambda: m_sp(A, Y, min(K, A.shape[0] // 2))[0]),
                      ("M-FOCUSS", lambda: m_focuss(A, Y, lam=0.0)[0])):
        start = time.perf_counter()
        estimates[name] = fit()
        times[name] = time.perf_counter() - start
    out["original"] = np.round(np.clip(truth[:, :N_SHOWN], 0, 1).T.ravel(), 3).tolist()
    for name, est in estimates.items():
        images = synth(est)
        out[f"psnr_{name}"] = psnr(images, truth, data_range=1.0)
        out[f"time_{name}"] = times[name]
        shown = np.clip(images[:, :N_SHOWN], 0.0, 1.0)  # clipped for display only
        out[f"images_{name}"] = np.round(shown.T.ravel(), 3).tolist()
    return out


_DIGIT_METHODS = ("IR-MMV", "IR-MMV (paper init)", "M-OMP", "M-SP", "M-FOCUSS")


def _digits_plot(rows, path):
    from matplotlib.figure import Figure

    rows = _merged(rows)
    settings = [s for s in DIGIT_SETTINGS if any(r["params"]["setting"] == s for r in rows)]
    names = ["original", *[f"images_{m}" for m in _DIGIT_METHODS
                           if all(f"images_{m}" in r["metrics"] for r in rows)]]
    fig = Figure(figsize=(1.1 * N_SHOWN * len(settings) + 0.5, 1.15 * len(names) + 0.6),
                 layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(1, len(settings)))
    for sub, setting in zip(subfigs, settings, strict=True):
        m = next(r for r in rows if r["params"]["setting"] == setting)["metrics"]
        axes = sub.subplots(len(names), N_SHOWN, squeeze=False)
        for i, key in enumerate(names):
            imgs = np.asarray(m[key]).reshape(N_SHOWN, 8, 8)
            for j in range(N_SHOWN):
                ax = axes[i, j]
                ax.imshow(imgs[j], cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            label = "original" if key == "original" else key.removeprefix("images_")
            if key != "original":
                shown = label.replace(" (", "\n(")  # "IR-MMV\n(paper init)"
                label = f"{shown}\n{m['psnr_' + label]:.1f} dB"
            axes[i, 0].set_ylabel(label, fontsize=8)
        sub.suptitle(setting, fontsize=9)
    plotting.save(fig, path)


def _digits_summary(rows):
    rows, out = _merged(rows), {}
    for setting in DIGIT_SETTINGS:
        ms = [r["metrics"] for r in rows if r["params"]["setting"] == setting]
        if ms:
            out[setting] = {f"PSNR {m} (dB)": float(np.median([x[f"psnr_{m}"] for x in ms]))
                            for m in _DIGIT_METHODS if all(f"psnr_{m}" in x for x in ms)}
            for name, _ in DIGIT_INITS.values():
                key = f"ir_iterations{_ir_suffix(name)}"
                if all(key in x for x in ms):
                    out[setting][f"{name} iterations"] = int(np.median([x[key] for x in ms]))
    return out


DIGITS = register(Experiment(
    name="ir-mmv-digits",
    paper=PAPER,
    figure="Fig. 4 (appendix D), digits instead of MNIST",
    claim="IR-MMV recovers the digit images with a visual quality comparable to M-OMP, M-SP "
          "and M-FOCUSS, without being told the sparsity. IR-MMV runs twice on the same "
          "problem: from the library's default init (V(0) = 0, alpha_g = 1e-2) and from the "
          "paper's Algorithm 1 init (V(0) = alpha_V 1, alpha_g = 1e-4), each the plain "
          "gradient path with no refit.",
    grid={"setting": list(DIGIT_SETTINGS), "n_images": [100], "max_iter": [1_000_000],
          "inits": [(init,) for init in DIGIT_INITS]},
    quick_grid={"setting": list(DIGIT_SETTINGS), "n_images": [30], "max_iter": [10_000],
                "inits": [(init,) for init in DIGIT_INITS]},
    trials=1,
    quick_trials=1,
    run_trial=_digits_trial,
    trial_seconds=450.0,  # scheduling hint: CPU s per trial (one init; 2026-12-02)
    plot=_digits_plot,
    summarize=_digits_summary,
    seed=7,
    description="Digits (sklearn) as MMV columns: originals, reconstructions and PSNR.",
))


# --- Claims checked by the report -------------------------------------------------------------
def _max_drift(rows, _):
    return max(r["metrics"]["balance_drift"] for r in rows), f"over {len(rows)} runs"


def _init_order(metric, smaller_is):
    """Share of settings where the smallest init gives a ``smaller_is`` ("lower"/"higher")
    median ``metric`` than the largest."""
    def measure(rows, _):
        hits, settings = 0, sorted({r["params"]["setting"] for r in rows})
        for setting in settings:
            by_scale: dict = {}
            for r in rows:
                if r["params"]["setting"] == setting:
                    by_scale.setdefault(r["params"]["init_scale"], []).append(
                        r["metrics"][metric])
            if len(by_scale) < 2:
                raise NotEvaluated(f"one init scale only in {setting!r}")
            small, large = (np.median(by_scale[k]) for k in (min(by_scale), max(by_scale)))
            hits += bool(small < large) if smaller_is == "lower" else bool(small > large)
        return hits / len(settings), f"{hits} of {len(settings)} settings"
    return measure


def _comparable_cells(rows, _):
    """Share of cells where IR-MMV's mean error is at most twice the best of M-OMP, M-SP and
    M-FOCUSS."""
    ratios = [r["metrics"]["IR-MMV_mean"] / min(r["metrics"][f"{m}_mean"]
                                                 for m in ("M-OMP", "M-SP", "M-FOCUSS"))
              for r in rows]
    hits = sum(q <= 2.0 for q in ratios)
    return hits / len(ratios), f"{hits} of {len(ratios)} cells; worst ratio {max(ratios):.3g}"


_DIGITS_CAUSE = ("the plain path (no refit) had not converged within max_iter; where M-FOCUSS "
                 "is exact (capped at 50 dB) IR-MMV must be too to be within 3 dB")
_PAPER_INIT_CAUSE = (
    "the paper's balanced V(0) = α_V 1 starts every row along 1_L with ‖V_i‖ = g_i/√2 for "
    "good: a row turns only slowly, the digits' rows (mixed-sign DCT rows, pixel rows far from "
    "1_L) are not learned and off-support rows grow in their place (docs/fidelity.md §5)")
_BUDGET_CAUSE = (
    "the experiment's budget of 20,000 iterations (the paper allows up to 10^7 at a fixed "
    "step): in the cells short of the claim (K = 6, 8 with M = 25; K = 8 with M = 50) the "
    "problems with error above 1e-2 all stop on max_iter before every row has escaped; with "
    "10x the budget their median error falls from 0.15-0.37 to 1.8e-5-1.5e-4 (docs/fidelity.md "
    "§10, `python benchmarks/fidelity.py mmv-budget`)")
_VISIBLE_PSNR = 50.0  # dB: above this no difference is visible, so PSNRs are capped there


def _psnr_gap(method):
    """Largest (over settings) PSNR shortfall of ``method`` behind the best baseline."""
    def measure(rows, _):
        def capped(r, m):
            return min(r["metrics"][f"psnr_{m}"], _VISIBLE_PSNR)

        kept = [r for r in rows if f"psnr_{method}" in r["metrics"]]
        if not kept:
            raise NotEvaluated(f"no stored PSNR of {method}")
        gaps: dict = {}
        for r in kept:
            gap = max(capped(r, m) for m in ("M-OMP", "M-SP", "M-FOCUSS")) - capped(r, method)
            key = r["params"]["setting"].split(",")[0]  # "overdetermined" / "underdetermined"
            gaps[key] = max(gap, gaps.get(key, -np.inf))
        return max(gaps.values()), "; ".join(f"{k}: {v:.3g} dB" for k, v in gaps.items())
    return measure


_TIED_ROWS = ("the 3·1 and 2·1 rows cross half their norm at nearly the same flow time (within "
              "1% in 9 of the full run's 10 trials, docs/fidelity.md §8), so their order is "
              "decided at the "
              "resolution of the recorded history (one sample in 100 iterations), ties "
              "counted as misses; the detail gives the ties and how often the 1·1 row, the one "
              "the paper's figure singles out, comes last")


def _incremental(rows, _):
    """Share of runs learning the rows largest first, with ties and the 1·1-last count."""
    value, detail = share(rows, lambda m: m["learned_largest_first"])
    ties = sum(r["metrics"]["learn_time_x2"] == r["metrics"]["learn_time_x3"] for r in rows)
    last = sum(_last(r["metrics"]) for r in rows)
    return value, (f"{detail}; 3·1 and 2·1 tied in {ties}; 1·1 last in {last} of "
                   f"{len(rows)}")


declare_claims(
    BALANCE,
    Claim("balance", "g_i²/2 and ‖V_i‖² stay equal (Lemma 5.1): max relative balance drift "
          "≤ 0.01 (partly ≤ 0.1).", _max_drift, target=0.0, tolerance=0.01, partly=0.1),
    Claim("incremental", "Rows are learned one at a time, larger first: share of runs with "
          "the order 3·1, 2·1, 1·1 = 1 (partly ≥ 0.5).", _incremental, op=">=",
          target=1.0, partly=0.5, cause=_TIED_ROWS),
)
declare_claims(
    INIT_SCALE,
    Claim("lower-loss", "Smaller initializations reach a lower final loss: share of settings "
          "where the smallest init's median final loss is below the largest's = 1 (partly ≥ "
          "0.5).", _init_order("final_loss", "lower"), op=">=", target=1.0, partly=0.5),
    Claim("slower-growth", "Smaller initializations grow the rows more slowly: share of "
          "settings where the first row is learned later from the smallest init = 1 (partly ≥ "
          "0.5).", _init_order("first_row_time", "higher"), op=">=", target=1.0, partly=0.5),
)
for _exp in (ERROR_VS_M, ERROR_VS_K):
    declare_claims(
        _exp,
        Claim("comparable", "IR-MMV's error is comparable to the oracle-informed M-OMP, M-SP "
              "and M-FOCUSS: share of cells where its mean error is at most twice the best of "
              "theirs ≥ 0.8 (partly ≥ 0.5).", _comparable_cells, op=">=", target=0.8,
              partly=0.3, cause=_BUDGET_CAUSE))
declare_claims(
    DIGITS,
    Claim("psnr", "IR-MMV's images (from V(0) = 0, the estimator's default) are of comparable "
          "quality: PSNR (capped at 50 dB, beyond which no difference is visible) at most 3 dB "
          "below the best of M-OMP, M-SP and M-FOCUSS in every setting (partly 6 dB).",
          _psnr_gap("IR-MMV"), target=3.0, partly=3.0, unit="dB",
          cause=_DIGITS_CAUSE),
    Claim("psnr-paper-init", "The same from the paper's init V(0) = α_V 1 (Algorithm 1): at "
          "most 3 dB below the best baseline in every setting (partly 6 dB).",
          _psnr_gap("IR-MMV (paper init)"), target=3.0, partly=3.0, unit="dB",
          cause=_PAPER_INIT_CAUSE),
)

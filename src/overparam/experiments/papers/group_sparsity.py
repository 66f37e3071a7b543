"""Li, Nguyen, Hegde, Wong, "Implicit regularization for group sparsity" (ICLR 2023).

Section 5 and appendix E: convergence of Algorithms 1/2 (Fig. 2, 3, 6, 11), group versus plain
sparsity (Fig. 4), size-one groups (Fig. 5), gradient descent without weight normalization
(Fig. 7), comparison with explicit regularization across SNR (Fig. 12) and a real-data table
(Table 3; here sklearn's diabetes data expanded into B-spline groups, as the paper's gene data
cannot be downloaded).

Settings the paper leaves open are taken from the authors' notebooks
(github.com/jiangyuan-li/Implicit-Group-Sparsity, commit b34e55c; see ``AUTHORS_SETTINGS``):
Algorithm 2's tau = 0.1 for Fig. 2/3/11 (``convergence_alg2.ipynb``: ``tol_on_u=1e-1``) and
0.03 for Fig. 4 (``group_vs_sparse.ipynb``: ``tol_on_u=3e-2``, ``lr=0.01``), epsilon = 1e-12;
Fig. 5 runs Algorithm 1 at lr 0.05 (``degenerated_case.ipynb``: ``is_two_lr=False``,
``lr=0.05``); their SNR comparison (``Comparisons.ipynb``) switches at the fixed epoch 200 with
lr 1e-3 for 600 epochs. The authors' code minimizes ``MSELoss`` = (1/n)||Xw - y||^2 with the
u-step at the old direction (``loss_scale="authors"``), the paper's text (1/2n)||Xw - y||^2
with the u-step at the new one (``"half-mean"``); the grids say which they run. Our own
choices: the direction init ``v_l(0)`` along ``X_l^T y`` (theirs: ones, which the first step
with ``1/u^4`` replaces by ``X_l^T y`` anyway); the DLNN baseline ``w = u⊙u - v⊙v`` with
per-factor init ``alpha`` and the same constant step as ``gamma``; Fig. 12 draws the 10
non-zeros from N(0, 1), fills two groups of 4 and half of a third (the paper's "10 non-zeros
in 3 groups of size 4"; their notebook uses 12 entries of 10), and sets the SNR as
``10 log10(||Xw||^2 / ||noise||^2)``.
"""

from __future__ import annotations

import itertools

import numpy as np

from ...baselines.group import (
    GroupLassoRegressor,
    GroupPrimalDualRegressor,
    group_lasso_alpha_max,
    group_lasso_path,
    group_weights,
)
from ...datasets.group import (
    load_breast_cancer_groups,
    load_diabetes_splines,
    make_group_sparse_problem,
)
from ...estimators.group import GroupHadamardRegressor
from ...metrics import relative_error
from ...operators import as_operator
from ...parameterizations import DiagonalLinearNetwork, GroupHadamard
from ...solvers import History, gradient_descent, weight_normalized_gd
from ...stopping import PathControl, StoppingRule, Validation
from .. import plotting
from ..spec import (
    Claim,
    Experiment,
    NotEvaluated,
    aggregate,
    declare_claims,
    median_of,
    register,
    share,
)

__all__ = ["CONVERGENCE", "DEGENERATE", "DIABETES", "ENTRIES", "NO_NORMALIZATION", "SNR",
           "VERSUS_DLNN"]

PAPER = "group-sparsity-li-nguyen-hegde-wong"

#: Values the paper does not give, from the authors' notebooks (module docstring).
AUTHORS_SETTINGS = {
    "tau_fig3": 0.1,        # convergence_alg2.ipynb: tol_on_u=1e-1, lr=1e-3, 1000 epochs
    "tau_fig4": 0.03,       # group_vs_sparse.ipynb: tol_on_u=3e-2, lr=0.01, 500 epochs
    "step_fig4": 0.01,
    "step_fig5": 0.05,      # degenerated_case.ipynb: Algorithm 1, lr=0.05, 1000 epochs, 30 runs
    "switch_fig12": 200,    # Comparisons.ipynb: `if epoch < 200` Algorithm 1, then lr 1e-3
    "step_fig12": 1e-3,
    "epochs_fig12": 600,
}
_N_POINTS = 100  # curves are sampled at about this many iterations


def _every(n_iter: int) -> int:
    return max(1, int(n_iter) // _N_POINTS)


def _run_path(problem, algorithm, n_iter, *, init_scale=1e-6, step=1e-3, tau=1e-3,
              loss_scale="half-mean", quantities=None):
    """Weight-normalized GD for ``n_iter`` iterations, history every ``n_iter/100``."""
    param = GroupHadamard(problem.meta["groups"])
    history = History(every=_every(n_iter), truth=problem.truth,
                      quantities=quantities(param) if quantities else {})
    res = weight_normalized_gd(param, as_operator(problem.operator), problem.y, algorithm=algorithm,
                               init_scale=init_scale, step_u=step, step_v=step,
                               switch_tol=tau, loss_scale=loss_scale,
                               stopping=StoppingRule(max_iter=int(n_iter), tol=0,
                                                     stagnation_tol=0), history=history)
    return param, res, history


def _curve(values) -> list:
    return [float(v) for v in np.asarray(values, dtype=float).ravel()]


def _active(problem) -> np.ndarray:
    return np.asarray(problem.meta["active_groups"])


# --- Fig. 2 / Fig. 6: convergence of Algorithms 1 and 2 -------------------------------------
def _convergence_trial(params: dict, seed: int) -> dict:
    problem = make_group_sparse_problem(150, 300, group_size=3, n_active_groups=3, values=10.0,
                                        noise_std=0.5, random_state=seed)
    active = _active(problem)

    def quantities(param):
        return {"mag": lambda p, x: param.group_norms(x)[active],
                "v": lambda p, x: p[1][np.isin(param.labels, active)]}

    _, res, hist = _run_path(problem, params["algorithm"], params["n_iter"],
                             tau=params.get("tau", AUTHORS_SETTINGS["tau_fig3"]),
                             loss_scale=params.get("loss_scale", "half-mean"),
                             quantities=quantities)
    err = np.asarray(hist.error)
    v = np.asarray(hist.values["v"])
    late = v[len(v) // 2:]
    return {"min_error": float(err.min()), "best_iteration": int(hist.iteration[err.argmin()]),
            "final_error": float(err[-1]),
            # Fig. 6: with the step 1/u^4 the directions keep moving late in the run
            "late_direction_change": float(np.max(np.abs(np.diff(late, axis=0))))
            if len(late) > 1 else 0.0,
            "switch_iteration": res.info["switch_iteration"],
            "iterations": _curve(hist.iteration), "error": _curve(err),
            "magnitudes": [_curve(m) for m in np.asarray(hist.values["mag"]).T],
            "true_magnitude": float(np.linalg.norm(
                problem.truth[problem.meta["groups"] == active[0]]))}


def _scale_of(row) -> str:
    return row["params"].get("loss_scale", "half-mean")


def _convergence_plot(rows, path):
    fig, axes = plotting.new_figure(1, 2)
    styles = {"half-mean": "-", "authors": ":"}
    for row in rows:
        if row["trial"]:
            continue
        m, alg, scale = row["metrics"], row["params"]["algorithm"], _scale_of(row)
        color = "C0" if alg == "alg1" else "C1"
        label = f"{alg}, {scale} loss"
        axes[0].plot(m["iterations"], m["error"], color=color, linestyle=styles[scale],
                     label=label)
        for k, mag in enumerate(m["magnitudes"]):
            axes[1].plot(m["iterations"], mag, color=color, linestyle=styles[scale],
                         label=label if k == 0 else None)
        axes[1].axhline(m["true_magnitude"], color="k", linewidth=0.8)
    plotting.finish(axes[0], xlabel="iteration", ylabel="relative error ||w - w*|| / ||w*||",
                    title="Recovery error (trial 0)", log="y")
    plotting.finish(axes[1], xlabel="iteration", ylabel="group norm ||w_l||",
                    title="Support group magnitudes (truth: black)")
    plotting.save(fig, path)


def _convergence_summary(rows):
    out = {}
    for scale in ("half-mean", "authors"):
        kept = [r for r in rows if _scale_of(r) == scale]
        prefix = "" if scale == "half-mean" else "authors' loss: "
        for s in aggregate(kept, ["algorithm"], "min_error"):
            out[f"{prefix}{s['algorithm']} min relative error (median)"] = round(s["median"], 4)
        for s in aggregate(kept, ["algorithm"], "final_error"):
            out[f"{prefix}{s['algorithm']} final relative error (median)"] = float(
                f"{s['median']:.3g}")
        for s in aggregate(kept, ["algorithm"], "best_iteration"):
            out[f"{prefix}{s['algorithm']} iteration of min (median)"] = s["median"]
        for s in aggregate(kept, ["algorithm"], "late_direction_change"):
            out[f"{prefix}{s['algorithm']} late max |v(t+1)-v(t)| (median)"] = float(
                f"{s['median']:.3g}")
    return out


CONVERGENCE = register(Experiment(
    name="group-convergence",
    paper=PAPER,
    figure="Fig. 2, Fig. 6",
    claim=("Algorithms 1 and 2 (alpha=1e-6, gamma=eta=1e-3) recover a 3-group signal of 10s "
           "from n=150 Rademacher measurements (p=300, sigma=0.5) to the noise level; the group "
           "magnitudes converge to the truth. With the step 1/u^4 (Alg. 1) the directions keep "
           "fluctuating late in the run (Fig. 6), Algorithm 2 is stable. Run on the paper's "
           "loss (1/2n)||r||^2 and on the authors' (1/n)||r||^2 with their u-step; Algorithm 2 "
           "switches at tau = 0.1 (their notebook)."),
    grid={"algorithm": ["alg1", "alg2"], "n_iter": [20_000],
          "loss_scale": ["half-mean", "authors"], "tau": [AUTHORS_SETTINGS["tau_fig3"]]},
    quick_grid={"algorithm": ["alg1", "alg2"], "n_iter": [2000],
                "loss_scale": ["half-mean", "authors"], "tau": [AUTHORS_SETTINGS["tau_fig3"]]},
    trials=5,
    quick_trials=1,
    run_trial=_convergence_trial,
    plot=_convergence_plot,
    summarize=_convergence_summary,
    seed=2,
    description="Error and group magnitudes along Algorithms 1 and 2 (Fig. 2) and the late "
                "direction jitter of Algorithm 1 (Fig. 6).",
))


# --- Fig. 3 / Fig. 11: entries, magnitudes, directions along Algorithm 2 --------------------
def _entries_trial(params: dict, seed: int) -> dict:
    problem = make_group_sparse_problem(150, 300, group_size=3, n_active_groups=3,
                                        values=np.arange(5.0, 14.0), noise_std=0.5,
                                        design=params["design"], random_state=seed)
    active = _active(problem)
    support = np.flatnonzero(problem.truth)
    groups = problem.meta["groups"]
    truth_dir = {k: problem.truth[groups == k] / np.linalg.norm(problem.truth[groups == k])
                 for k in active}

    def quantities(param):
        def cosines(p, x):
            return [float(p[1][param.labels == k] @ truth_dir[k]) for k in active]
        return {"mag": lambda p, x: param.group_norms(x)[active],
                "entries": lambda p, x: x[support], "cos": cosines}

    _, res, hist = _run_path(problem, "alg2", params["n_iter"],
                             tau=params.get("tau", AUTHORS_SETTINGS["tau_fig3"]),
                             loss_scale=params.get("loss_scale", "authors"),
                             quantities=quantities)
    mags = np.asarray(hist.values["mag"])
    target = np.array([np.linalg.norm(problem.truth[problem.meta["groups"] == k]) for k in active])
    half = [hist.iteration[int(np.argmax(mags[:, j] >= target[j] / 2))]
            if mags[:, j].max() >= target[j] / 2 else None for j in range(active.size)]
    order = np.argsort(-target)
    learned = [half[j] for j in order]
    err = np.asarray(hist.error)
    return {"min_error": float(err.min()), "final_error": float(err[-1]),
            "switch_iteration": res.info["switch_iteration"],
            "final_cosine_min": float(np.min(np.asarray(hist.values["cos"])[-1])),
            "largest_first": bool(all(t is not None for t in learned)
                                  and all(a <= b for a, b in itertools.pairwise(learned))),
            "half_time_by_magnitude": learned, "true_magnitudes": _curve(target[order]),
            "iterations": _curve(hist.iteration), "error": _curve(err),
            "entries": [_curve(c) for c in np.asarray(hist.values["entries"]).T],
            "true_entries": _curve(problem.truth[support]),
            "magnitudes": [_curve(c) for c in mags.T],
            "cosines": [_curve(c) for c in np.asarray(hist.values["cos"]).T]}


def _entries_plot(rows, path):
    designs = sorted({r["params"]["design"] for r in rows})
    fig, axes = plotting.new_figure(len(designs), 3, width=4.0, height=3.0, squeeze=False)
    for i, design in enumerate(designs):
        row = next(r for r in rows if r["params"]["design"] == design and r["trial"] == 0)
        m = row["metrics"]
        it = m["iterations"]
        for c, t in zip(m["entries"], m["true_entries"], strict=True):
            axes[i, 0].plot(it, c)
            axes[i, 0].axhline(t, color="k", linewidth=0.5, linestyle=":")
        for c in m["magnitudes"]:
            axes[i, 1].plot(it, c)
        for c in m["cosines"]:
            axes[i, 2].plot(it, c)
        plotting.finish(axes[i, 0], xlabel="iteration", ylabel="entry value",
                        title=f"Entries on the support ({design} X)")
        plotting.finish(axes[i, 1], xlabel="iteration", ylabel="group norm ||w_l||",
                        title="Group magnitudes")
        plotting.finish(axes[i, 2], xlabel="iteration", ylabel="cos(v_l, v_l*)",
                        title="Directions")
    plotting.save(fig, path)


def _entries_summary(rows):
    out = {}
    for design in sorted({r["params"]["design"] for r in rows}):
        sel = [r for r in rows if r["params"]["design"] == design]
        out[f"{design}: min relative error (median)"] = round(
            float(np.median([r["metrics"]["min_error"] for r in sel])), 4)
        out[f"{design}: largest group learned first (share of trials)"] = float(
            np.mean([r["metrics"]["largest_first"] for r in sel]))
        out[f"{design}: final min cos(v_l, v_l*) (median)"] = round(
            float(np.median([r["metrics"]["final_cosine_min"] for r in sel])), 4)
    return out


ENTRIES = register(Experiment(
    name="group-alg2-entries",
    paper=PAPER,
    figure="Fig. 3, Fig. 11",
    claim=("Algorithm 2 recovers entries 5..13 in 3 groups of 3 (n=150, p=300, sigma=0.5) "
           "with Rademacher (Fig. 3) or Gaussian (Fig. 11) X: entries, group magnitudes and "
           "directions converge to the truth, groups learned one at a time, larger first."),
    grid={"design": ["rademacher", "gaussian"], "n_iter": [10_000],
          "tau": [AUTHORS_SETTINGS["tau_fig3"]], "loss_scale": ["authors"]},
    quick_grid={"design": ["rademacher", "gaussian"], "n_iter": [2000],
                "tau": [AUTHORS_SETTINGS["tau_fig3"]], "loss_scale": ["authors"]},
    trials=5,
    quick_trials=1,
    run_trial=_entries_trial,
    plot=_entries_plot,
    summarize=_entries_summary,
    seed=3,
    description="Incremental learning along Algorithm 2, Rademacher and Gaussian designs.",
))


# --- Fig. 4: group versus plain sparsity ----------------------------------------------------
def _dlnn_path(problem, n_iter, init_scale, step, loss_factor=1.0):
    """GD on the DLNN; ``loss_factor=2`` is the authors' MSELoss (1/n)||r||^2."""
    history = History(every=_every(n_iter), truth=problem.truth)
    n = problem.operator.shape[0]
    gradient_descent(DiagonalLinearNetwork(problem.operator.shape[1]),
                     as_operator(problem.operator), problem.y, init_scale=init_scale, step=step,
                     loss_weight=loss_factor / n,
                     stopping=StoppingRule(max_iter=int(n_iter), tol=0, stagnation_tol=0),
                     history=history)
    return history


def _versus_dlnn_trial(params: dict, seed: int) -> dict:
    problem = make_group_sparse_problem(100, 500, group_size=4, n_active_groups=4, values=1.0,
                                        noise_std=0.5, random_state=seed)
    n_iter, step = params["n_iter"], params.get("step", AUTHORS_SETTINGS["step_fig4"])
    scale = params.get("loss_scale", "authors")
    _, res, group = _run_path(problem, "alg2", n_iter, step=step,
                              tau=params.get("tau", AUTHORS_SETTINGS["tau_fig4"]),
                              loss_scale=scale)
    dlnn = _dlnn_path(problem, n_iter, 1e-6, step, 2.0 if scale == "authors" else 1.0)
    eg, ed = np.asarray(group.error), np.asarray(dlnn.error)
    return {"group_min_error": float(eg.min()), "group_final_error": float(eg[-1]),
            "switch_iteration": res.info["switch_iteration"],
            "dlnn_min_error": float(ed.min()), "dlnn_final_error": float(ed[-1]),
            "iterations": _curve(group.iteration), "group_error": _curve(eg),
            "dlnn_iterations": _curve(dlnn.iteration), "dlnn_error": _curve(ed)}


def _versus_dlnn_plot(rows, path):
    fig, ax = plotting.new_figure()
    for row in rows:
        m = row["metrics"]
        first = row["trial"] == 0
        ax.plot(m["iterations"], m["group_error"], color="C0", alpha=0.6,
                label="IR-group (Alg. 2, groups of 4)" if first else None)
        ax.plot(m["dlnn_iterations"], m["dlnn_error"], color="C3", alpha=0.6,
                label="DLNN w = u⊙u - v⊙v" if first else None)
    plotting.finish(ax, xlabel="iteration", ylabel="relative error ||w - w*|| / ||w*||",
                    title="n=100, p=500, 4 groups of 4 (one line per trial)", log="y")
    plotting.save(fig, path)


def _versus_dlnn_summary(rows):
    out = {}
    for key in ("group_min_error", "dlnn_min_error", "group_final_error", "dlnn_final_error"):
        vals = [r["metrics"][key] for r in rows]
        out[f"{key} (median)"] = round(float(np.median(vals)), 4)
    out["trials where IR-group beats DLNN (best along path)"] = float(np.mean(
        [r["metrics"]["group_min_error"] < r["metrics"]["dlnn_min_error"] for r in rows]))
    return out


VERSUS_DLNN = register(Experiment(
    name="group-vs-dlnn",
    paper=PAPER,
    figure="Fig. 4",
    claim=("With n=100, p=500 and 16 non-zeros (all 1) in 4 groups of 4 (sigma=0.5), "
           "Algorithm 2 with groups of 4 recovers w*, while the plain-sparsity DLNN "
           "w = u⊙u - v⊙v fails for lack of samples."),
    grid={"n_iter": [3000], "step": [AUTHORS_SETTINGS["step_fig4"]],
          "tau": [AUTHORS_SETTINGS["tau_fig4"]], "loss_scale": ["authors"]},
    quick_grid={"n_iter": [1500], "step": [AUTHORS_SETTINGS["step_fig4"]],
                "tau": [AUTHORS_SETTINGS["tau_fig4"]], "loss_scale": ["authors"]},
    trials=10,
    quick_trials=1,
    run_trial=_versus_dlnn_trial,
    plot=_versus_dlnn_plot,
    summarize=_versus_dlnn_summary,
    seed=4,
    description="Error along the path: IR-group (Alg. 2) vs the diagonal linear network.",
))


# --- Fig. 5: size-one groups ----------------------------------------------------------------
def _degenerate_trial(params: dict, seed: int) -> dict:
    problem = make_group_sparse_problem(80, 200, group_size=1, n_active_groups=5,
                                        values=[1, -1, 1, -1, 1], noise_std=0.5,
                                        random_state=seed)
    _, _, hist = _run_path(problem, params.get("algorithm", "alg1"), params["n_iter"],
                           step=params["step"], loss_scale=params.get("loss_scale", "authors"))
    err = np.asarray(hist.error)
    return {"min_error": float(err.min()), "final_error": float(err[-1]),
            "iterations": _curve(hist.iteration), "log_error": _curve(np.log(err))}


def _degenerate_plot(rows, path):
    fig, ax = plotting.new_figure()
    curves = np.array([r["metrics"]["log_error"] for r in rows])
    it = rows[0]["metrics"]["iterations"]
    q25, med, q75 = np.quantile(curves, [0.25, 0.5, 0.75], axis=0)
    plotting.band(ax, it, med, q25, q75, marker="", label=f"median, quartiles ({len(rows)} runs)")
    plotting.finish(ax, xlabel="iteration", ylabel="log relative error log(||w-w*||/||w*||)",
                    title="Size-one groups: n=80, p=200, w* = [1,-1,1,-1,1]")
    plotting.save(fig, path)


def _degenerate_summary(rows):
    mins = [r["metrics"]["min_error"] for r in rows]
    return {"min relative error (median)": round(float(np.median(mins)), 4),
            "min relative error (quartiles)": [round(float(q), 4)
                                               for q in np.quantile(mins, [0.25, 0.75])],
            "runs": len(rows)}


DEGENERATE = register(Experiment(
    name="group-degenerate",
    paper=PAPER,
    figure="Fig. 5",
    claim=("With groups of size one (plain sparsity, w_i ~ u_i^2 sign(v_i)), weight-normalized "
           "GD recovers w* = [1,-1,1,-1,1] from n=80 measurements, p=200 (30 repetitions). The "
           "paper does not say which algorithm; run as in the authors' notebook "
           "(degenerated_case.ipynb): Algorithm 1, lr 0.05, their loss (1/n)||r||^2, 1,000 "
           "epochs."),
    grid={"n_iter": [1000], "step": [AUTHORS_SETTINGS["step_fig5"]], "algorithm": ["alg1"],
          "loss_scale": ["authors"]},
    quick_grid={"n_iter": [1000], "step": [AUTHORS_SETTINGS["step_fig5"]],
                "algorithm": ["alg1"], "loss_scale": ["authors"]},
    trials=30,
    quick_trials=3,
    run_trial=_degenerate_trial,
    plot=_degenerate_plot,
    summarize=_degenerate_summary,
    seed=5,
    description="Log error along Algorithm 1 (lr 0.05, the authors' loss) with size-one "
                "groups, median and quartiles.",
))


# --- Fig. 7: gradient descent without weight normalization ----------------------------------
def _no_normalization_trial(params: dict, seed: int) -> dict:
    problem = make_group_sparse_problem(100, 500, group_size=4, n_active_groups=4, values=1.0,
                                        noise_std=0.5, random_state=seed)
    param = GroupHadamard(problem.meta["groups"])
    u0 = np.full(param.n_groups, float(params["u0"]))
    rng = np.random.default_rng(seed)
    v0 = {"zero": np.zeros(param.n_features),
          "constant": np.full(param.n_features, 1e-3),
          "random": 1e-3 * rng.standard_normal(param.n_features)}[params["v_init"]]
    active = _active(problem)
    off = ~np.isin(problem.meta["groups"], active)
    groups = problem.meta["groups"]
    truth_dir = {k: problem.truth[groups == k] / np.linalg.norm(problem.truth[groups == k])
                 for k in active}
    history = History(every=_every(params["n_iter"]), truth=problem.truth, quantities={
        "cos": lambda p, x: np.mean([p[1][param.labels == k] @ truth_dir[k]
                                     / max(np.linalg.norm(p[1][param.labels == k]), 1e-300)
                                     for k in active]),
        "off": lambda p, x: np.max(np.abs(x[off]))})
    gradient_descent(param, as_operator(problem.operator), problem.y, init_params=(u0, v0),
                     step="adaptive", loss_weight=1.0 / problem.operator.shape[0],
                     stopping=StoppingRule(max_iter=int(params["n_iter"]), tol=0,
                                           stagnation_tol=0), history=history)
    err = np.asarray(history.error)
    return {"min_error": float(err.min()), "final_error": float(err[-1]),
            "max_off_support": float(np.max(history.values["off"])),
            "iterations": _curve(history.iteration), "error": _curve(err),
            "mean_cosine": _curve(history.values["cos"])}


def _no_normalization_plot(rows, path):
    fig, axes = plotting.new_figure(1, 2)
    for k, v_init in enumerate(sorted({r["params"]["v_init"] for r in rows})):
        row = next(r for r in rows if r["params"]["v_init"] == v_init and r["trial"] == 0)
        m = row["metrics"]
        axes[0].plot(m["iterations"], m["error"], color=f"C{k}", label=f"v(0) {v_init}")
        axes[1].plot(m["iterations"], m["mean_cosine"], color=f"C{k}", label=f"v(0) {v_init}")
    plotting.finish(axes[0], xlabel="iteration (adaptive step)",
                    ylabel="relative error ||w - w*|| / ||w*||",
                    title="Plain GD, no weight normalization", log="y")
    plotting.finish(axes[1], xlabel="iteration (adaptive step)",
                    ylabel="mean cos(v_l, v_l*) on support", title="Directions")
    plotting.save(fig, path)


def _no_normalization_summary(rows):
    out = {}
    for v_init in sorted({r["params"]["v_init"] for r in rows}):
        sel = [r["metrics"] for r in rows if r["params"]["v_init"] == v_init]
        out[f"v(0) {v_init}: min relative error (median)"] = round(
            float(np.median([m["min_error"] for m in sel])), 4)
        out[f"v(0) {v_init}: max |w_i| off support (median)"] = round(
            float(np.median([m["max_off_support"] for m in sel])), 4)
    return out


NO_NORMALIZATION = register(Experiment(
    name="group-gd-no-normalization",
    paper=PAPER,
    figure="Fig. 7",
    claim=("Plain gradient descent (no weight normalization) in the Fig. 4 setting converges "
           "from v(0) = 0, the directions aligning from 0; from a small non-zero v(0) = 1e-3 "
           "the entries outside the support get significant magnitudes and it fails."),
    grid={"v_init": ["zero", "constant", "random"], "u0": [1e-3], "n_iter": [20_000]},
    quick_grid={"v_init": ["zero", "random"], "u0": [1e-2], "n_iter": [3000]},
    trials=5,
    quick_trials=1,
    run_trial=_no_normalization_trial,
    plot=_no_normalization_plot,
    summarize=_no_normalization_summary,
    seed=7,
    description="GD on (u, v) without normalization from v(0)=0 or a small v(0).",
))


# --- Fig. 12: error versus SNR against explicit regularization ------------------------------
def _snr_trial(params: dict, seed: int) -> dict:
    # "paper": 10 N(0, 1) non-zeros; "authors": their notebook's 12 entries of 10 (3 full
    # groups), the signal their 600 epochs at lr 1e-3 are sized for
    signal = params.get("signal", "paper")
    if signal not in ("paper", "authors"):
        raise ValueError(f"signal must be 'paper' or 'authors', got {signal!r}")
    size = {"n_nonzero": 10} if signal == "paper" else {"n_nonzero": 12, "values": 10.0}
    problem = make_group_sparse_problem(150, 300, group_size=4, n_active_groups=3,
                                        design="gaussian", snr=float(params["snr_db"]),
                                        random_state=seed, **size)
    X, y, w = problem.operator, problem.y, problem.truth
    ir = GroupHadamardRegressor(groups=4, early_stopping="validation", max_iter=50_000,
                                random_state=seed).fit(X, y)
    # the authors' setting: Algorithm 2 switched at epoch 200 on their loss, lr 1e-3
    steps = AUTHORS_SETTINGS["step_fig12"]
    authors = GroupHadamardRegressor(groups=4, early_stopping="validation", step_u=steps,
                                     step_v=steps, switch_at=AUTHORS_SETTINGS["switch_fig12"],
                                     loss_scale="authors",
                                     max_iter=AUTHORS_SETTINGS["epochs_fig12"],
                                     random_state=seed).fit(X, y)
    lasso = GroupLassoRegressor(groups=4, cv=5, n_alphas=params["n_alphas"],
                                random_state=seed).fit(X, y)
    pd = GroupPrimalDualRegressor(groups=4, random_state=seed).fit(X, y)
    return {"ir_group": relative_error(ir.coef_, w),
            "ir_group_authors": relative_error(authors.coef_, w),
            "group_lasso": relative_error(lasso.coef_, w),
            "primal_dual": relative_error(pd.coef_, w),
            "ir_chosen_iteration": ir.chosen_iteration_, "pd_chosen_iteration": pd.n_iter_}


_SNR_METHODS = {"ir_group": "IR-group (Alg. 2, validation stop)",
                "ir_group_authors": "IR-group, authors' setting (switch at 200, lr 1e-3)",
                "group_lasso": "group lasso (skglm, 5-fold CV)",
                "primal_dual": "primal-dual iterative reg. (validation stop)"}


def _signal_of(row) -> str:
    return row["params"].get("signal", "paper")


def _snr_plot(rows, path):
    from matplotlib.lines import Line2D

    fig, ax = plotting.new_figure(width=6.0, height=4.0)
    handles = []
    for signal, style in (("paper", "-"), ("authors", "--")):
        kept = [r for r in rows if _signal_of(r) == signal]
        for k, (key, label) in enumerate(_SNR_METHODS.items()):
            if not kept or not all(key in r["metrics"] for r in kept):
                continue  # rows stored before the column
            plotting.stat_curve(ax, kept, x="snr_db", metric=key, stat="mean",
                                color=f"C{k}", linestyle=style)
            if signal == "paper":
                handles.append(Line2D([], [], color=f"C{k}", marker="o", label=label))
    # One entry per method and one per signal: the legend stays narrower than the axes.
    handles += [Line2D([], [], color="gray", linestyle="-", label="paper's signal (10 N(0, 1))"),
                Line2D([], [], color="gray", linestyle="--",
                       label="authors' signal (12 entries of 10)")]
    plotting.finish(ax, xlabel="SNR (dB)", ylabel="relative error ||w - w*|| / ||w*||",
                    title="n=150, p=300, 3 groups of 4, Gaussian X (mean ± sd)", log="y",
                    legend=False)
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    plotting.save(fig, path)


def _snr_summary(rows):
    out = {}
    for signal in ("paper", "authors"):
        kept = [r for r in rows if _signal_of(r) == signal]
        if not kept:
            continue
        prefix = "" if signal == "paper" else "authors' signal: "  # paper keeps its keys
        for key in _SNR_METHODS:
            if not all(key in r["metrics"] for r in kept):
                continue
            for s in plotting.grouped_stats(kept, "snr_db", key):
                out[f"{prefix}{key} @ {s['snr_db']} dB"] = f"{s['mean']:.4f} ± {s['sd']:.4f}"
        wins = [r["metrics"]["ir_group"] < min(r["metrics"]["group_lasso"],
                                               r["metrics"]["primal_dual"]) for r in kept]
        out[f"{prefix}share of trials where IR-group is best"] = round(float(np.mean(wins)), 3)
    return out


SNR = register(Experiment(
    name="group-snr",
    paper=PAPER,
    figure="Fig. 12",
    claim=("Gaussian X, n=150, p=300, 10 non-zeros in 3 groups of 4, 30 repetitions per SNR: "
           "Algorithm 2 is consistently better than group lasso (proximal gradient) and the "
           "primal-dual iterative regularization; primal-dual is comparable at high SNR. "
           "IR-group runs twice: with its data-scaled default (validation stop), on the paper's "
           "signal (10 N(0, 1) entries) and the authors' notebook's (12 entries of 10), and in "
           "the authors' setting (switch at epoch 200, lr 1e-3, 600 epochs), which is checked "
           "on their signal only: on the paper's it does not leave the origin in 600 epochs."),
    grid={"snr_db": [5, 10, 15, 20, 25, 30], "n_alphas": [30], "signal": ["paper", "authors"]},
    quick_grid={"snr_db": [20], "n_alphas": [10], "signal": ["paper"]},
    trials=30,
    quick_trials=1,
    run_trial=_snr_trial,
    trial_seconds=2.5,  # scheduling hint: CPU s per trial (2026-12-02)
    plot=_snr_plot,
    summarize=_snr_summary,
    seed=12,
    description="Estimation error vs SNR: IR-group vs group lasso vs primal-dual, with "
                "held-out/CV tuning for every method.",
))


# --- Table 3 analogue: diabetes data with B-spline groups -----------------------------------
def _standardize(train, *others, scale=None):
    """Center on the training mean; divide by ``scale`` (default: the training sd)."""
    mean = train.mean(axis=0)
    sd = train.std(axis=0) if scale is None else scale
    sd = np.where(sd > 0, sd, 1.0)
    return [(a - mean) / sd for a in (train, *others)]


_REAL_DATA = {"diabetes": load_diabetes_splines, "breast-cancer": load_breast_cancer_groups}


def _ridge_on_validation(X_tr, y_tr, X_va, y_va):
    """Ridge with its penalty chosen on the validation part: dense shrinkage, no selection."""
    n, p = X_tr.shape
    gram, xty = X_tr.T @ X_tr, X_tr.T @ y_tr
    fits = [np.linalg.solve(gram + lam * n * np.eye(p), xty) for lam in np.geomspace(1e-3, 1e3, 40)]
    return min(fits, key=lambda w: float(np.mean((X_va @ w - y_va) ** 2)))


def _diabetes_trial(params: dict, seed: int) -> dict:
    data = _REAL_DATA[params.get("dataset", "diabetes")]()
    rng = np.random.default_rng(seed)
    perm = rng.permutation(data.y.size)
    tr, va, te = np.array_split(perm, 3)  # equal train / validation / test parts
    # Columns are scaled by their sd over all rows (uses no target): a boundary B-spline can be
    # nearly constant on one third of the data, and its training sd would blow up the others.
    X_tr, X_va, X_te = _standardize(data.operator[tr], data.operator[va], data.operator[te],
                                    scale=data.operator.std(axis=0))
    y_tr, y_va, y_te = (v[:, 0] for v in _standardize(data.y[tr, None], data.y[va, None],
                                                        data.y[te, None]))
    groups = data.meta["groups"]
    op_tr, op_va = as_operator(X_tr), as_operator(X_va)

    def test_mse(w):
        return float(np.mean((X_te @ w - y_te) ** 2))

    # IR-group: Algorithm 2 on the training part, stopped on the validation part.
    validation = Validation(op_va, y_va, every=10, patience=200, horizon=3.0)
    ir = GroupHadamardRegressor(groups=groups, init_scale=params["alpha"],
                                step_u=params["gamma"], step_v=params["gamma"],
                                max_iter=params["max_iter"], tol=0)
    ir_res = ir._solve(op_tr, y_tr, PathControl(validation=validation))
    # Group lasso: lambda on the validation part, along a warm-started skglm path.
    labels = np.asarray(groups)
    top = group_lasso_alpha_max(X_tr, y_tr, labels, group_weights(labels))
    alphas = np.geomspace(top, top * 1e-3, params["n_alphas"])
    coefs = group_lasso_path(X_tr, y_tr, groups, alphas)
    best = int(np.argmin(np.mean((X_va @ coefs.T - y_va[:, None]) ** 2, axis=0)))
    # Primal-dual: iterations chosen on the validation part.
    pd_validation = Validation(op_va, y_va, every=1, patience=200, horizon=3.0)
    pd_res = GroupPrimalDualRegressor(groups=groups, max_iter=params["max_iter"], tol=0)._solve(
        op_tr, y_tr, PathControl(validation=pd_validation))
    ols = np.linalg.lstsq(X_tr, y_tr, rcond=None)[0]
    return {"ir_group": test_mse(ir_res.coef), "group_lasso": test_mse(coefs[best]),
            "primal_dual": test_mse(pd_res.coef), "least_squares": test_mse(ols),
            "ridge": test_mse(_ridge_on_validation(X_tr, y_tr, X_va, y_va)),
            "ir_iteration": int(ir_res.info.get("best_iteration", ir_res.n_iter)),
            "lasso_alpha": float(alphas[best]),
            "pd_iteration": int(pd_res.info.get("best_iteration", pd_res.n_iter)),
            "ir_groups_selected": int(np.sum(GroupHadamard(groups).group_norms(ir_res.coef)
                                             > 1e-3)),
            "lasso_groups_selected": int(np.sum(GroupHadamard(groups).group_norms(coefs[best])
                                                > 1e-8))}


_DIABETES_METHODS = {"ir_group": "IR-group (Alg. 2)", "group_lasso": "group lasso",
                     "primal_dual": "primal-dual", "ridge": "ridge",
                     "least_squares": "least squares"}


def _dataset_of(row) -> str:
    return row["params"].get("dataset", "diabetes")


def _diabetes_plot(rows, path):
    datasets = list(dict.fromkeys(_dataset_of(r) for r in rows))
    fig, axes = plotting.new_figure(1, len(datasets), squeeze=False)
    for ax, name in zip(axes[0], datasets, strict=True):
        kept = [r for r in rows if _dataset_of(r) == name]
        methods = [k for k in _DIABETES_METHODS if all(k in r["metrics"] for r in kept)]
        ax.boxplot([[r["metrics"][k] for r in kept] for k in methods])
        ax.set_xticks(range(1, len(methods) + 1), [_DIABETES_METHODS[k] for k in methods],
                      rotation=20)
        plotting.finish(ax, xlabel="method",
                        ylabel="test MSE (units of the training variance of y)",
                        title=f"{name}: {len(kept)} random equal splits", legend=False)
    plotting.save(fig, path)


def _diabetes_summary(rows):
    out = {}
    for name in dict.fromkeys(_dataset_of(r) for r in rows):
        kept = [r for r in rows if _dataset_of(r) == name]
        prefix = "" if name == "diabetes" else f"{name}: "  # diabetes keeps its keys
        for key in _DIABETES_METHODS:
            if not all(key in r["metrics"] for r in kept):  # rows stored before the column
                continue
            vals = np.array([r["metrics"][key] for r in kept])
            sd = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
            out[f"{prefix}test MSE {key}"] = f"{vals.mean():.4f} ± {sd:.4f}"
        out[f"{prefix}splits"] = len(kept)
    return out


DIABETES = register(Experiment(
    name="group-diabetes",
    paper=PAPER,
    figure="Table 3 (analogue)",
    claim=("On real grouped data (paper: gene expression, 20 genes x 5 B-splines, 120 rows), "
           "with equal random train/validation/test splits, IR-group has the smallest test "
           "MSE, ahead of proximal-gradient group lasso and primal-dual (paper: 0.0248 vs "
           "0.0310 and 0.0287). Here two data sets shipped with scikit-learn: diabetes, 9 "
           "features x 5 B-splines + 1 binary, and breast cancer, 10 measurements x (mean, "
           "standard error, worst); ridge and least squares are shown for reference."),
    grid={"alpha": [1e-3], "gamma": [1e-2], "max_iter": [20_000], "n_alphas": [50],
          "dataset": ["diabetes", "breast-cancer"]},
    quick_grid={"alpha": [1e-3], "gamma": [1e-2], "max_iter": [5000], "n_alphas": [20],
                "dataset": ["diabetes", "breast-cancer"]},
    trials=20,
    quick_trials=2,
    run_trial=_diabetes_trial,
    trial_seconds=1.1,  # scheduling hint: CPU s per trial (2026-12-02)
    plot=_diabetes_plot,
    summarize=_diabetes_summary,
    seed=33,
    description="Test MSE (mean ± sd over random splits) of IR-group, group lasso, "
                "primal-dual, ridge and least squares on the diabetes data with spline groups "
                "and the breast cancer data with its natural groups.",
))


# --- Claims checked by the report -------------------------------------------------------------
def _ratio(numerator, denominator, where=None, where_den=None):
    def measure(rows, _):
        return median_of(rows, numerator, where) / median_of(rows, denominator,
                                                             where_den or where)
    return measure


def _recovers(metric="min_error", where=None):
    return lambda rows, _: median_of(rows, metric, where)


def _mean_ratio(metric, reference, dataset):
    def measure(rows, _):
        kept = [r for r in rows if r["params"].get("dataset", "diabetes") == dataset]
        if not kept:
            raise NotEvaluated(f"no split of {dataset!r} stored")
        a = np.mean([r["metrics"][metric] for r in kept])
        b = np.mean([r["metrics"][reference] for r in kept])
        ahead = sum(r["metrics"][metric] < r["metrics"][reference] for r in kept)
        return float(a / b), (f"mean {a:.3g} vs {b:.3g} over {len(kept)} splits, "
                              f"IR-group ahead in {ahead}")
    return measure


# A late change of a unit direction below this is invisible at the scale of Fig. 6; without a
# floor, two round-off-sized changes (2e-6 over 2e-8, say) would read as a hundredfold "jitter".
_VISIBLE_DIRECTION_CHANGE = 1e-4


def _jitter(scale):
    """Late direction change of Algorithm 1 over Algorithm 2's (floored at a visible change)."""
    def measure(rows, _):
        kept = [r for r in rows if _scale_of(r) == scale]
        alg1 = median_of(kept, "late_direction_change", {"algorithm": "alg1"})
        alg2 = median_of(kept, "late_direction_change", {"algorithm": "alg2"})
        return (alg1 / max(alg2, _VISIBLE_DIRECTION_CHANGE),
                f"median late change {alg1:.2g} (Alg. 1) vs {alg2:.2g} (Alg. 2), "
                f"floor {_VISIBLE_DIRECTION_CHANGE:g}")
    return measure


def _snr_share(method, signal=None):
    """Share of trials (of one ``signal``, or all) where ``method`` beats both baselines."""
    def measure(rows, _):
        kept = [r for r in rows if signal is None or _signal_of(r) == signal]
        if len(kept) < 10:
            raise NotEvaluated(f"{len(kept)} trials of the {signal or 'any'} signal, needed: 10")
        return share(kept, lambda m: m[method] < min(m["group_lasso"], m["primal_dual"]))
    return measure


_SHRINKAGE = ("shrinkage, not stopping, data size or scale (docs/fidelity.md §4): IR-group "
              "selects groups and fits them nearly unshrunk; on these dense, weak signals ridge "
              "(shrinkage without selection) matches group lasso and a relaxed group lasso "
              "(selection without shrinkage) does no better than IR-group")
_PRIMAL_DUAL_TIE = ("a near tie between two early-stopped iterations without explicit "
                    "shrinkage: primal-dual is itself behind group lasso on these data, and "
                    "the spread over splits of the paired difference is 2 to 5 times its mean "
                    "in the full run (docs/fidelity.md §8; the detail gives the splits where "
                    "IR-group is ahead)")
_LOSS_NAMES = {"half-mean": "the paper's loss (1/2n)‖r‖²", "authors": "the authors' loss (1/n)‖r‖²"}
_ALG1_UNSTABLE = ("Fig. 6's late instability, which the authors' loss produces (docs/fidelity.md "
                  "§2): the error touches about 0.01 near iteration 300 (quick run, sampled "
                  "every 20 iterations) and then settles near 0.4; the full run samples every "
                  "200 iterations and misses the minimum")
_RECOVER = "median minimum relative error ≤ 0.1 (partly ≤ 0.3)"
declare_claims(
    CONVERGENCE,
    *(Claim(f"{alg}-recovers{'' if scale == 'half-mean' else '-authors-loss'}",
            f"Algorithm {alg[-1]} recovers w* ({_LOSS_NAMES[scale]}): {_RECOVER}.",
            _recovers(where={"algorithm": alg, "loss_scale": scale}), target=0.0,
            tolerance=0.1, partly=0.3,
            cause=_ALG1_UNSTABLE if (alg, scale) == ("alg1", "authors") else "")
      for alg in ("alg1", "alg2") for scale in ("half-mean", "authors")),
    Claim("alg1-jitter-authors-loss", "With the authors' loss (1/n)‖r‖², Algorithm 1's "
          "directions fluctuate late in the run, Algorithm 2's do not: late max |v(t+1) − v(t)| "
          "of Alg. 1 / max(Alg. 2, 1e-4) ≥ 10 (partly ≥ 2).", _jitter("authors"), op=">=",
          target=10.0, partly=8.0),
    Claim("alg1-jitter-our-loss", "The same with our loss (1/2n)‖r‖²: ratio ≥ 10 (partly ≥ 2).",
          _jitter("half-mean"), op=">=", target=10.0, partly=8.0,
          cause="with our loss scale the step is half the authors' and the late instability "
                "does not appear (issue 16 item 2)"),
)
declare_claims(
    ENTRIES,
    Claim("recovers", f"Algorithm 2 recovers the entries (both designs): {_RECOVER}.",
          _recovers(), target=0.0, tolerance=0.1, partly=0.3),
    Claim("largest-first", "Groups are learned one at a time, larger first: share of trials "
          "with the largest group learned first = 1 (partly ≥ 0.5).",
          lambda rows, _: share(rows, lambda m: m["largest_first"]), op=">=", target=1.0,
          partly=0.5),
    Claim("directions", "Directions converge to the truth: median final min cos(v_l, v_l*) "
          "≥ 0.95 (partly ≥ 0.8).", _recovers("final_cosine_min"), op=">=", target=0.95,
          partly=0.15),
)
declare_claims(
    VERSUS_DLNN,
    Claim("group-recovers", f"IR-group (Alg. 2, groups of 4) recovers w*: {_RECOVER}.",
          _recovers("group_min_error"), target=0.0, tolerance=0.1, partly=0.3),
    Claim("dlnn-fails", "The plain-sparsity DLNN fails: its best error is at least twice "
          "IR-group's (ratio DLNN / IR-group of median best errors ≥ 2; partly ≥ 1).",
          _ratio("dlnn_min_error", "group_min_error"), op=">=", target=2.0, partly=1.0),
)
declare_claims(
    DEGENERATE,
    Claim("recovers", "Size-one groups (Algorithm 1, lr 0.05, the authors' loss): w* = "
          f"[1, −1, 1, −1, 1] is recovered: {_RECOVER}.",
          _recovers(), target=0.0, tolerance=0.1, partly=0.3),
)
declare_claims(
    NO_NORMALIZATION,
    Claim("zero-init-recovers", f"GD without normalization from v(0) = 0 converges: "
          f"{_RECOVER}.", _recovers(where={"v_init": "zero"}), target=0.0, tolerance=0.1,
          partly=0.3),
    Claim("nonzero-init-fails", "From a small random v(0) the entries off the support get "
          "significant magnitudes: median max |w_i| off support ≥ 10× that from v(0) = 0 "
          "(partly ≥ 2×).", _ratio("max_off_support", "max_off_support", {"v_init": "random"},
                                   {"v_init": "zero"}), op=">=", target=10.0, partly=8.0),
)
declare_claims(
    SNR,
    Claim("ir-best", "IR-group (data-scaled default, both signals) is consistently better "
          "than group lasso and primal-dual: share of trials where it has the smallest error "
          "≥ 0.8 (partly ≥ 0.5; needs ≥ 10 trials).", _snr_share("ir_group"),
          op=">=", target=0.8, partly=0.3, min_rows=10),
    Claim("authors-setting-best", "IR-group in the authors' setting (switch at epoch 200, lr "
          "1e-3, 600 epochs), on their notebook's signal (12 entries of 10), is consistently "
          "better than group lasso and primal-dual: share of those trials where it has the "
          "smallest error ≥ 0.8 (partly ≥ 0.5; needs ≥ 10 trials).",
          _snr_share("ir_group_authors", "authors"), op=">=", target=0.8, partly=0.3,
          min_rows=10),
)
declare_claims(
    DIABETES,
    *(Claim(f"ir-vs-{ref.replace('_', '-')}-{data}", f"{data}: IR-group has a smaller mean test "
            f"MSE than {name}: ratio IR-group / {name} ≤ 1 (partly ≤ 1.1).",
            _mean_ratio("ir_group", ref, data), target=1.0, partly=0.1,
            cause=_SHRINKAGE if ref == "group_lasso" else _PRIMAL_DUAL_TIE)
      for data in ("diabetes", "breast-cancer")
      for ref, name in (("group_lasso", "group lasso"), ("primal_dual", "primal-dual"))),
)

"""Spectral neural networks for matrix sensing (the paper's Sec. 5, Fig. 2-5).

Paper: Chu, Ghosh, Lam, Mukherjee, "Implicit regularization via spectral neural networks and
non-linear matrix sensing" (``shared/papers/spectral-neural-networks-chu-et-al.txt``).

- ``snn-aligned``: Fig. 2. Aligned sensing matrices ``A_i = Phi Abar_i Psi^T``, the paper's
  init, ``K = 2``, tanh; training error, nuclear norm and the 3 leading singular values along
  gradient descent for several step sizes, all on the same problem; and the limit of the flow
  (a long run with the safe adaptive step) against cvxpy's nuclear-norm minimizer.
- ``snn-gaussian``: Fig. 3-4. Gaussian ``A_i`` (``n = 10``, ``m = 50``); SNN against least
  squares by GD from 0, the depth-3 product ``W1 W2 W3`` from ``1e-4 I``, factorized GD
  ``U V^T`` and nuclear-norm minimization, all on the same problem in each trial.
- ``snn-images``: Fig. 5 with sklearn's digits (8 x 8) and a sklearn sample photograph
  (28 x 28, MNIST's size) instead of MNIST (not downloadable here); ``K = 4``.

Choices the paper leaves open: the iterative methods other than Fig. 2 use the safe adaptive
step (the paper's learning rates are not given) and stop at relative residual ``1e-6``; the
measurement noise is ``1e-2 eps`` everywhere (Sec. 5.1); images are scaled to nuclear norm 1
like the synthetic ``X*`` (PSNR does not depend on the scale); ``alpha(0)`` is uniform on
[0, 1] (Sec. 5.1).
"""

from __future__ import annotations

import numpy as np

from ...datasets import (
    load_digit,
    load_grayscale_sample_image,
    make_aligned_problem,
    make_gaussian_sensing_problem,
)
from ...metrics import effective_rank, psnr, relative_error
from ...operators import AlignedSpectralOperator
from ...parameterizations import (
    AlignedSpectralNetwork,
    DeepMatrixFactorization,
    DeepSpectralNetwork,
    Identity,
)
from ...solvers import (
    ConstantStep,
    History,
    aligned_spectral_flow,
    aligned_spectral_gd,
    gradient_descent,
    spectral_gd,
)
from ...stopping import DivergenceError, StoppingRule
from .. import plotting
from ..spec import Claim, Experiment, NotEvaluated, declare_claims, median_of, register, share

__all__ = ["ALIGNED", "GAUSSIAN", "IMAGES"]

PAPER = "spectral-neural-networks-chu-et-al"
METHODS = ("snn", "least-squares", "depth-3", "factorized", "nuclear-norm")
LABELS = {"snn": "SNN (ours)", "least-squares": "least squares (GD from 0)",
          "depth-3": "depth-3 W1W2W3", "factorized": "factorized UV^T",
          "nuclear-norm": "nuclear-norm min (cvxpy)"}
_CURVE_POINTS = 50


def _thin(values, n=_CURVE_POINTS):
    """At most ``n`` evenly spaced entries (first and last kept), as plain floats."""
    values = np.asarray(values, dtype=float)
    if values.shape[0] > n:
        values = values[np.unique(np.linspace(0, values.shape[0] - 1, n).round().astype(int))]
    return values.tolist()


def _nuclear(X) -> float:
    return float(np.linalg.norm(X, "nuc"))


def _top(X, k=3) -> list:
    return np.linalg.svd(X, compute_uv=False)[:k].tolist()


# --------------------------------------------------------------------------------------------
# Fig. 2: the aligned setting
# --------------------------------------------------------------------------------------------
def _aligned_trial(params, seed):
    from ...baselines.low_rank import nuclear_norm_minimization

    problem = make_aligned_problem(10, 10, rank=6, n_measurements=50, noise_std=1e-2,
                                   basis=params["basis"], random_state=seed)
    op, y = problem.operator, problem.y
    m = y.shape[0]
    n_iter = int(params["n_iter"])
    every = max(1, n_iter // _CURVE_POINTS)
    init = AlignedSpectralNetwork(op.rank, 2).paper_init(np.random.default_rng(seed + 1))
    quantities = {"nuc": lambda p, s: np.abs(s).sum(),
                  "sv": lambda p, s: np.sort(np.abs(s))[::-1][:3]}
    out = {"steps": list(params["steps"])}
    for step in params["steps"]:
        hist = History(every=every, quantities=quantities)
        key = f"lr={step:g}"
        try:
            res = aligned_spectral_gd(op, y, init=init, step=ConstantStep(step), history=hist,
                                      stopping=StoppingRule(max_iter=n_iter, tol=0.0,
                                                            stagnation_tol=0.0))
            out[f"{key}:diverged"] = False
            out[f"{key}:final_loss"] = res.info["final_loss"]
            out[f"{key}:final_nuclear_norm"] = float(np.abs(res.info["diagonal"]).sum())
            # Distance to the exact flow at the same time t = step * iterations.
            same_time = aligned_spectral_flow(op, y, init=init, t_max=res.info["time"],
                                              n_points=2)
            out[f"{key}:gap_to_flow"] = relative_error(res.coef, same_time.coef)
        except DivergenceError:
            out[f"{key}:diverged"] = True
        h = hist.as_dict()
        out[f"{key}:iteration"] = _thin(h["iteration"])
        out[f"{key}:loss"] = _thin(h["loss"])
        out[f"{key}:nuclear_norm"] = _thin(h["nuc"])
        out[f"{key}:sv"] = [_thin(col) for col in np.asarray(h["sv"]).T]
    # The gradient flow itself (stiff ODE solver), up to flow time T of the paper's loss.
    flow = aligned_spectral_flow(op, y, init=init, t_max=float(params["flow_time"]) * m,
                                 n_points=_CURVE_POINTS)
    path = np.abs(flow.info["path"])
    out["flow:time"] = (flow.info["times"] / m).tolist()
    out["flow:loss"] = flow.info["path_loss"].tolist()
    out["flow:nuclear_norm"] = path.sum(axis=1).tolist()
    out["flow:sv"] = np.sort(path, axis=1)[:, ::-1][:, :3].T.tolist()
    s_limit = flow.info["diagonal"]
    # Theorem 2 with noise: the limit is the least-squares diagonal (unique when m >= r).
    s_ls = np.linalg.lstsq(op.diagonal_operator().matrix, y, rcond=None)[0]
    # Nuclear-norm minimization over the least-squares fits, "min ||X||_* s.t.
    # ||A(X) - y|| <= min residual", in an exact, well-conditioned form: the fits are
    # {X : B^T diag(Phi^T X Psi) = B^T s_ls} = {X : diag(Phi^T X Psi) = s_ls} (B has full row
    # rank), i.e. r independent equality constraints (the 50 rows of A have rank r).
    fits = AlignedSpectralOperator(op.left, op.right, np.eye(op.rank))
    nnm = nuclear_norm_minimization(fits, s_ls, solver="CLARABEL")
    out.update(
        limit_ode_evaluations=flow.n_iter, limit_loss=flow.info["final_loss"],
        limit_nuclear_norm=float(np.abs(s_limit).sum()),
        limit_sv=np.sort(np.abs(s_limit))[::-1][:3].tolist(),
        cvxpy_nuclear_norm=_nuclear(nnm),
        limit_vs_cvxpy=float(abs(np.abs(s_limit).sum() - _nuclear(nnm)) / _nuclear(nnm)),
        limit_vs_least_squares_diagonal=float(np.linalg.norm(s_limit - s_ls)
                                              / np.linalg.norm(s_ls)),
        least_squares_nuclear_norm=float(np.abs(s_ls).sum()),
        sigma_star_sv=np.sort(np.abs(op.to_diagonal(problem.truth)))[::-1][:3].tolist(),
        sigma_star_l1=float(np.abs(op.to_diagonal(problem.truth)).sum()),
        truth_nuclear_norm=_nuclear(problem.truth),
    )
    return out


def _plot_aligned(rows, path):
    firsts = {}
    for r in rows:  # the first trial of each basis
        firsts.setdefault(r["params"]["basis"], r["metrics"])
    fig, axes = plotting.new_figure(len(firsts), 3, width=4.2, height=3.4, squeeze=False)
    for ax_row, (basis, row) in zip(axes, firsts.items(), strict=True):
        _plot_aligned_row(ax_row, row, basis)
    plotting.save(fig, path)


def _plot_aligned_row(axes, row, basis):
    styles = ("-", "--", ":")
    t_flow = np.asarray(row["flow:time"])
    keep = t_flow > 0  # log axis
    axes[0].plot(t_flow[keep], np.asarray(row["flow:loss"])[keep], color="k", linewidth=2.5,
                 alpha=0.4, label="gradient flow (LSODA)")
    axes[1].plot(t_flow[keep], np.asarray(row["flow:nuclear_norm"])[keep], color="k",
                 linewidth=2.5, alpha=0.4, label="gradient flow (LSODA)")
    for j, sv in enumerate(row["flow:sv"]):
        axes[2].plot(t_flow[keep], np.asarray(sv)[keep], color="k", linewidth=2.5, alpha=0.4,
                     linestyle=styles[j], label="gradient flow" if j == 0 else None)
    colors = plotting_colors(len(row["steps"]))
    for step, color in zip(row["steps"], colors, strict=True):
        key = f"lr={step:g}"
        t = step * np.asarray(row[f"{key}:iteration"], dtype=float)
        keep = t > 0
        label = f"GD {key}" + (" (diverged)" if row.get(f"{key}:diverged") else "")
        axes[0].plot(t[keep], np.asarray(row[f"{key}:loss"])[keep], color=color, label=label)
        axes[1].plot(t[keep], np.asarray(row[f"{key}:nuclear_norm"])[keep], color=color,
                     label=label)
        for j, sv in enumerate(row[f"{key}:sv"]):
            axes[2].plot(t[keep], np.asarray(sv)[keep], color=color, linestyle=styles[j],
                         label=label if j == 0 else None)
    axes[1].axhline(row["cvxpy_nuclear_norm"], color="k", linestyle="--",
                    label="nuclear-norm min (cvxpy)")
    axes[1].axhline(row["truth_nuclear_norm"], color="grey", linestyle=":",
                    label="||X*||_* = 1")
    for j, value in enumerate(row["sigma_star_sv"]):
        axes[2].axhline(value, color="r", linestyle=styles[j], linewidth=0.8,
                        label="|sigma*| (3 largest)" if j == 0 else None)
    xlabel = "flow time t = lr x iteration"
    plotting.finish(axes[0], xlabel=xlabel, ylabel="training error 1/2||A(X)-y||^2",
                    log="xy", title=f"training error ({basis} basis)")
    plotting.finish(axes[1], xlabel=xlabel, ylabel="nuclear norm ||X||_*",
                    log="x", title=f"nuclear norm ({basis} basis)")
    plotting.finish(axes[2], xlabel=xlabel, ylabel="singular value", log="x",
                    title=f"3 leading singular values ({basis} basis)")


def plotting_colors(n):
    """``n`` distinct colors of matplotlib's default cycle."""
    import matplotlib as mpl

    cycle = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[i % len(cycle)] for i in range(n)]


def _summarize_aligned(rows):
    out = {}
    for basis in sorted({r["params"]["basis"] for r in rows}):
        ms = [r["metrics"] for r in rows if r["params"]["basis"] == basis]
        b = f"{basis} basis: "
        out.update({
            b + "flow limit nuclear norm (median)":
                float(np.median([m["limit_nuclear_norm"] for m in ms])),
            b + "cvxpy nuclear norm (median)":
                float(np.median([m["cvxpy_nuclear_norm"] for m in ms])),
            b + "flow limit vs cvxpy relative gap (max)":
                float(max(m["limit_vs_cvxpy"] for m in ms)),
            b + "flow limit vs least-squares diagonal (max)":
                float(max(m["limit_vs_least_squares_diagonal"] for m in ms)),
            b + "||sigma*||_1 (median)": float(np.median([m["sigma_star_l1"] for m in ms]))})
        for step in ms[0]["steps"]:
            key = f"lr={step:g}"
            kept = [m for m in ms if not m.get(f"{key}:diverged")]
            out[f"{b}{key}: diverged runs"] = len(ms) - len(kept)
            if kept:
                out[f"{b}{key}: relative distance to the flow (median)"] = float(np.median(
                    [m[f"{key}:gap_to_flow"] for m in kept]))
                out[f"{b}{key}: final nuclear norm (median)"] = float(np.median(
                    [m[f"{key}:final_nuclear_norm"] for m in kept]))
                out[f"{b}{key}: final training error (median)"] = float(np.median(
                    [m[f"{key}:final_loss"] for m in kept]))
    return out


ALIGNED = register(Experiment(
    name="snn-aligned",
    paper=PAPER,
    figure="Fig. 2",
    claim=("With aligned A_i = Phi Abar_i Psi^T (m = 50, n = 10, K = 2, tanh, noise 1e-2), the "
           "singular values of X(t) converge exponentially to sigma* and the nuclear norm to "
           "||X*||_* = 1; small/moderate learning rates follow the flow, whose limit solves "
           "min ||X||_* s.t. the measurements (Theorem 3). Basis 'truth': Phi, Psi are X*'s "
           "singular vectors (needed for the limit 1); 'random': Haar-random."),
    grid={"basis": ["truth", "random"], "n_iter": [20_000],
          "steps": [(1e-4, 1e-3, 3e-3, 1e-2, 3e-2)], "flow_time": [1e5]},
    quick_grid={"basis": ["truth"], "n_iter": [2_000], "steps": [(1e-3, 3e-3, 3e-2)],
                "flow_time": [1e5]},
    run_trial=_aligned_trial,
    trial_seconds=8.0,  # scheduling hint: CPU s per trial (2026-12-02)
    trials=5,
    quick_trials=1,
    plot=_plot_aligned,
    summarize=_summarize_aligned,
    seed=2,
    description="SNN GD on aligned measurements for several step sizes; flow limit vs cvxpy",
))


# --------------------------------------------------------------------------------------------
# Fig. 3-5: general (Gaussian) sensing matrices
# --------------------------------------------------------------------------------------------
def _history():
    return History(every=10, quantities={"nuc": lambda p, x: _nuclear(x)})


def _curves(out, method, result):
    h = result.history.as_dict()
    out[f"{method}:iteration"] = _thin(h["iteration"])
    out[f"{method}:loss"] = _thin(h["loss"])
    out[f"{method}:nuclear_norm_curve"] = _thin(h["nuc"])


#: The paper's text (Sec. 5.2: m = 50, standard normal A_i, one block of K = 2) and the
#: authors' notebook (github.com/porichoy-gupto/spectral-neural-nets, "Figure2": m = 75,
#: A_i = 10 x standard normal (``torch.randn(n, n) * n``), ``in_dim = [2, 2, 2, 2]``: a
#: depth-4 SNN of two blocks per layer).
SETTINGS = {"paper": {"m": 50, "sensing_scale": 1.0, "layers": (2,)},
            "authors": {"m": 75, "sensing_scale": 10.0, "layers": (2, 2, 2, 2)}}


def _snn(op, y, layers, seed, rule):
    if len(layers) == 1:
        return spectral_gd(op, y, n_components=layers[0], init_scale=1e-4, random_state=seed,
                           stopping=rule, history=_history())
    return gradient_descent(DeepSpectralNetwork(*op.input_shape, layers=layers), op, y,
                            init_scale=1e-4, random_state=seed, stopping=rule,
                            history=_history())


def _run_methods(problem, methods, *, n_components, seed, max_iter, layers=None):
    """Every method on the same problem; metrics keyed ``method:name``."""
    from ...baselines.low_rank import nuclear_norm_minimization
    from ...estimators import FactorizedRegressor

    op, y, truth = problem.operator, problem.y, problem.truth
    rule = StoppingRule(max_iter=max_iter, tol=1e-6)
    out = {}
    for method in methods:
        if method == "snn":
            res = _snn(op, y, layers or (n_components,), seed, rule)
            X = res.coef
        elif method == "least-squares":
            res = gradient_descent(Identity(op.input_shape), op, y, init_scale=0.0,
                                   stopping=rule, history=_history())
            X = res.coef
        elif method == "depth-3":
            res = gradient_descent(DeepMatrixFactorization(*op.input_shape, depth=3), op, y,
                                   init_scale=1e-4, stopping=rule, history=_history())
            X = res.coef
        elif method == "factorized":
            est = FactorizedRegressor(random_state=seed, max_iter=max_iter,
                                      early_stopping=None).fit(op, y)
            res, X = est.result_, est.coef_
        elif method == "nuclear-norm":
            # The noise is known here (1e-2 per measurement): the oracle constraint level.
            X = nuclear_norm_minimization(op, y, noise_bound=1e-2 * np.sqrt(y.size))
            res = None
        else:
            raise ValueError(f"unknown method {method!r}")
        if res is not None and res.history is not None:
            _curves(out, method, res)
        if res is not None:
            out[f"{method}:iterations"] = int(res.n_iter)
        out[f"{method}:nuclear_norm"] = _nuclear(X)
        out[f"{method}:psnr"] = psnr(X, truth)
        out[f"{method}:relative_error"] = relative_error(X, truth)
        out[f"{method}:train_residual"] = float(np.linalg.norm(op.forward(X) - y))
        out[f"{method}:effective_rank"] = effective_rank(X, tol=1e-2)
        out[f"{method}:top_sv"] = _top(X)
        out[f"{method}:image"] = np.round(X, 5).ravel().tolist()
    out["truth:nuclear_norm"] = _nuclear(truth)
    out["truth:top_sv"] = _top(truth)
    out["truth:image"] = np.round(truth, 5).ravel().tolist()
    out["shape"] = list(truth.shape)
    out["methods"] = list(methods)
    return out


def _gaussian_trial(params, seed):
    setting = SETTINGS[params.get("setting", "paper")]
    m = int(params.get("m", setting["m"]))
    # the noise stays 1e-2 per measurement (both the paper and the notebook)
    problem = make_gaussian_sensing_problem(10, 10, rank=6, n_measurements=m, noise_std=1e-2,
                                            scale=setting["sensing_scale"], random_state=seed)
    out = _run_methods(problem, params["methods"], n_components=2, seed=seed,
                       max_iter=int(params["max_iter"]), layers=setting["layers"])
    out["snn_depth"] = len(setting["layers"])
    return out


def _method_table(rows, metric):
    """``{method: [values over rows]}`` for a scalar metric."""
    methods = rows[0]["metrics"]["methods"]
    return {m: [r["metrics"][f"{m}:{metric}"] for r in rows] for m in methods}


def _plot_gaussian(rows, path):
    groups = {}
    for r in rows:  # one pair of figure rows per setting (paper / authors)
        groups.setdefault(r["params"].get("setting", "paper"), []).append(r)
    fig, axes = plotting.new_figure(2 * len(groups), 3, width=4.2, height=3.4, squeeze=False)
    for i, (setting, kept) in enumerate(groups.items()):
        _plot_gaussian_setting(axes[2 * i:2 * i + 2], kept, setting)
    plotting.save(fig, path)


def _plot_gaussian_setting(axes, rows, setting):
    ms = rows[0]["metrics"]
    methods = ms["methods"]
    colors = dict(zip(methods, plotting_colors(len(methods)), strict=True))
    for m in methods:
        if f"{m}:iteration" in ms:
            it = np.asarray(ms[f"{m}:iteration"]) + 1  # log axis: iteration 0 at 1
            axes[0, 0].plot(it, ms[f"{m}:loss"], color=colors[m], label=LABELS[m])
            axes[0, 1].plot(it, ms[f"{m}:nuclear_norm_curve"], color=colors[m],
                            label=LABELS[m])
        else:
            axes[0, 1].axhline(ms[f"{m}:nuclear_norm"], color=colors[m], linestyle="--",
                               label=LABELS[m] + " (final)")
    axes[0, 1].axhline(ms["truth:nuclear_norm"], color="k", linestyle=":", label="truth")
    width = 0.8 / (len(methods) + 1)
    for j, m in enumerate([*methods, "truth"]):
        axes[0, 2].bar(np.arange(3) + j * width, ms[f"{m}:top_sv"], width,
                       color="k" if m == "truth" else colors[m],
                       label="truth" if m == "truth" else LABELS[m])
    axes[0, 2].set_xticks(np.arange(3) + 0.4, ["1st", "2nd", "3rd"])
    plotting.finish(axes[0, 0], xlabel="iteration + 1 (first trial)",
                    ylabel="training error 1/2||A(X)-y||^2", log="xy", title="training error")
    plotting.finish(axes[0, 1], xlabel="iteration + 1 (first trial)", ylabel="nuclear norm",
                    log="x", title="nuclear norm")
    plotting.finish(axes[0, 2], xlabel="leading singular values (first trial)",
                    ylabel="singular value", title="spectrum")
    # Bottom row: PSNR and nuclear norm over all trials; reconstructions of the first trial.
    psnrs = _method_table(rows, "psnr")
    nucs = _method_table(rows, "nuclear_norm")
    axes[1, 0].boxplot([psnrs[m] for m in methods], tick_labels=[m for m in methods])
    axes[1, 0].tick_params(axis="x", rotation=30)
    plotting.finish(axes[1, 0], xlabel="method", ylabel="PSNR (dB)",
                    title=f"PSNR over {len(rows)} trial(s)")
    axes[1, 1].boxplot([nucs[m] for m in methods], tick_labels=[m for m in methods])
    axes[1, 1].axhline(1.0, color="k", linestyle=":", label="||X*||_* = 1")
    axes[1, 1].tick_params(axis="x", rotation=30)
    plotting.finish(axes[1, 1], xlabel="method", ylabel="nuclear norm",
                    title=f"nuclear norm over {len(rows)} trial(s)")
    _image_strip(axes[1, 2], ms, methods)
    if setting != "paper":
        cfg = SETTINGS[setting]
        for ax in axes.ravel():
            ax.set_title(f"{ax.get_title()} [{setting}: m={cfg['m']}, "
                         f"A x{cfg['sensing_scale']:g}, depth {len(cfg['layers'])}]",
                         fontsize="small")


def _image_strip(ax, ms, methods):
    shape = tuple(ms["shape"])
    tiles = [np.asarray(ms["truth:image"]).reshape(shape)]
    tiles += [np.asarray(ms[f"{m}:image"]).reshape(shape) for m in methods]
    lo, hi = float(np.min(tiles[0])), float(np.max(tiles[0]))
    pad = np.full((shape[0], 1), np.nan)
    strip = np.hstack([t for tile in tiles for t in (tile, pad)][:-1])
    ax.imshow(strip, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_xticks([shape[1] / 2 + i * (shape[1] + 1) for i in range(len(tiles))],
                  ["truth", *methods], rotation=30)
    ax.set_yticks([])
    ax.grid(False)
    ax.set_title("reconstructions (first trial)")


def _summarize_methods(rows):
    out = {}
    for setting in SETTINGS:
        kept = [r for r in rows if r["params"].get("setting", "paper") == setting]
        if not kept:
            continue
        # the paper's setting keeps the keys it had before settings were a grid option
        prefix = "" if setting == "paper" else "authors' setting (m=75, A x10, depth 4): "
        for metric in ("nuclear_norm", "psnr", "effective_rank"):
            for m, values in _method_table(kept, metric).items():
                out[f"{prefix}{m}: {metric} (median)"] = float(np.median(values))
    return out


GAUSSIAN = register(Experiment(
    name="snn-gaussian",
    paper=PAPER,
    figure="Fig. 3-4",
    claim=("Gaussian A_i, m = 50, n = 10: the SNN finds a lower nuclear norm (about 0.95) than "
           "least squares by GD from 0 (about 1.5) and a better reconstruction (PSNR about 20 "
           "vs about 7 dB); depth-3 gives lower effective rank but larger errors. Checked in "
           "the paper's setting (m = 50, one block, depth 1); the authors' notebook setting "
           "(m = 75, A_i x 10, depth 4) is run beside it and shown in the tables."),
    grid={"setting": list(SETTINGS), "methods": [METHODS], "max_iter": [50_000]},
    # the authors' depth-4 setting takes about a minute a trial: its quick check is a test
    quick_grid={"setting": ["paper"], "methods": [METHODS], "max_iter": [20_000]},
    run_trial=_gaussian_trial,
    # scheduling hint: CPU s per trial (2026-12-02)
    trial_seconds=lambda p: 30.0 if p["setting"] == "authors" else 2.0,
    trials=20,
    quick_trials=2,
    plot=_plot_gaussian,
    summarize=_summarize_methods,
    seed=3,
    description="SNN vs least squares, depth-3, factorized GD and nuclear-norm min (Gaussian)",
))


def _image_trial(params, seed):
    if params["image"] == "digits":
        image = load_digit(seed % 1797)
    elif params["image"] == "china":
        image = load_grayscale_sample_image("china.jpg", shape=(28, 28))
    else:
        raise ValueError(f"unknown image {params['image']!r}")
    truth = image / np.linalg.norm(image, "nuc")  # the paper's normalization of X*
    m = round(params["ratio"] * truth.size)
    problem = make_gaussian_sensing_problem(truth=truth, n_measurements=m, noise_std=1e-2,
                                            random_state=seed)
    return _run_methods(problem, params["methods"], n_components=4, seed=seed,
                        max_iter=int(params["max_iter"]))


def _plot_images(rows, path):
    cells = []
    for r in rows:
        key = (r["params"]["image"], r["params"]["ratio"])
        if key not in [c[0] for c in cells]:
            cells.append((key, r))
    methods = rows[0]["metrics"]["methods"]
    fig, axes = plotting.new_figure(len(cells) + 1, 1, width=9.0, height=2.6, squeeze=False)
    for ax, ((image, ratio), row) in zip(axes[:-1, 0], cells, strict=True):
        _image_strip(ax, row["metrics"], methods)
        labels = ["truth"] + [f"{m}\n{row['metrics'][f'{m}:psnr']:.1f} dB" for m in methods]
        ax.set_xticklabels(labels, rotation=0, fontsize=7)
        ax.set_title(f"{image}, m/n1n2 = {ratio:g} (first trial)")
    ax = axes[-1, 0]
    width = 0.8 / len(methods)
    colors = plotting_colors(len(methods))
    for j, m in enumerate(methods):
        med = [np.median([r["metrics"][f"{m}:psnr"] for r in rows
                          if (r["params"]["image"], r["params"]["ratio"]) == key])
               for key, _ in cells]
        ax.bar(np.arange(len(cells)) + j * width, med, width, color=colors[j], label=LABELS[m])
    ax.set_xticks(np.arange(len(cells)) + 0.4 - width / 2,
                  [f"{i}, m/n1n2={r:g}" for (i, r), _ in cells])
    plotting.finish(ax, xlabel="image, sampling ratio", ylabel="PSNR (dB, median)",
                    title="PSNR per method")
    plotting.save(fig, path)


def _summarize_images(rows):
    out = {}
    keys = sorted({(r["params"]["image"], r["params"]["ratio"]) for r in rows})
    for image, ratio in keys:
        sub = [r for r in rows if (r["params"]["image"], r["params"]["ratio"]) == (image, ratio)]
        for m, values in _method_table(sub, "psnr").items():
            out[f"{image} m/n1n2={ratio:g}: {m} PSNR dB (median)"] = float(np.median(values))
    return out


IMAGES = register(Experiment(
    name="snn-images",
    paper=PAPER,
    figure="Fig. 5",
    claim=("Real images (MNIST in the paper; sklearn digits and a sample photograph here) "
           "from few Gaussian measurements, K = 4: the SNN reconstructs them better (higher "
           "PSNR) than least squares."),
    grid={"image": ["digits", "china"], "ratio": [0.3, 0.5, 0.7], "methods": [METHODS],
          "max_iter": [30_000]},
    quick_grid={"image": ["digits"], "ratio": [0.7], "methods": [METHODS],
                "max_iter": [10_000]},
    run_trial=_image_trial,
    trial_seconds=27.0,  # scheduling hint: CPU s per trial (2026-12-02)
    trials=3,
    quick_trials=2,
    plot=_plot_images,
    summarize=_summarize_images,
    seed=5,
    description="SNN vs baselines on sklearn digits and a sample photograph (PSNR)",
))


# --- Claims checked by the report -------------------------------------------------------------
def _smallest_step_gap(rows, _):
    step = min(rows[0]["metrics"]["steps"])
    key = f"lr={step:g}"
    kept = [r for r in rows if not r["metrics"].get(f"{key}:diverged")]
    if not kept:
        raise NotEvaluated(f"every run at {key} diverged")
    return median_of(kept, f"{key}:gap_to_flow"), f"{key}, {len(kept)} runs"


_PAPER_SETTING = {"setting": "paper"}


def _median_ratio(metric, method, reference, where=None):
    return lambda rows, _: (median_of(rows, f"{method}:{metric}", where)
                            / median_of(rows, f"{reference}:{metric}", where))


def _median_diff(metric, method, reference, where=None):
    return lambda rows, _: (median_of(rows, f"{method}:{metric}", where)
                            - median_of(rows, f"{reference}:{metric}", where))


declare_claims(
    ALIGNED,
    Claim("nuclear-minimal", "The flow's limit solves min ‖X‖_* subject to the measurements "
          "(Theorem 3): max relative gap to cvxpy's nuclear norm ≤ 1e-3 (partly ≤ 1e-2).",
          lambda rows, _: max(r["metrics"]["limit_vs_cvxpy"] for r in rows), target=0.0,
          tolerance=1e-3, partly=1e-2),
    Claim("norm-one", "With Φ, Ψ the singular vectors of X*, the nuclear norm converges to "
          "‖X*‖_* = 1 (± 0.01; partly ± 0.05).",
          lambda rows, _: median_of(rows, "limit_nuclear_norm", {"basis": "truth"}), op="==",
          target=1.0, tolerance=0.01, partly=0.05,
          cause="the measurements carry noise (1e-2): the limit is the minimum-nuclear-norm "
                "interpolant of the noisy data (see nuclear-minimal), whose norm exceeds "
                "‖X*‖_*"),
    Claim("gd-follows-flow", "Small learning rates follow the flow: median relative distance "
          "to the flow at the smallest step ≤ 0.05 (partly ≤ 0.2).", _smallest_step_gap,
          target=0.0, tolerance=0.05, partly=0.2),
)
declare_claims(
    GAUSSIAN,
    Claim("lower-nuclear-norm", "The SNN finds a lower nuclear norm than least squares (paper: "
          "0.95 vs 1.5; the paper's setting m = 50): median ratio SNN / least squares ≤ 0.8 "
          "(partly ≤ 1).",
          _median_ratio("nuclear_norm", "snn", "least-squares", _PAPER_SETTING), target=0.8,
          partly=0.2),
    Claim("better-psnr", "The SNN reconstructs better (paper: about 20 vs 7 dB; the paper's "
          "setting): median PSNR gain over least squares ≥ 5 dB (partly ≥ 0 dB).",
          _median_diff("psnr", "snn", "least-squares", _PAPER_SETTING), op=">=", target=5.0,
          partly=5.0, unit="dB"),
    Claim("depth3-lower-rank", "Depth 3 gives a lower effective rank than the SNN (the paper's "
          "setting): median effective rank depth-3 − SNN ≤ 0.",
          _median_diff("effective_rank", "depth-3", "snn", _PAPER_SETTING), target=0.0),
)
declare_claims(
    IMAGES,
    Claim("snn-beats-ls", "The SNN reconstructs real images better than least squares: share "
          "of trials where its PSNR is higher = 1 (partly ≥ 0.5).",
          lambda rows, _: share(rows, lambda m: m["snn:psnr"] > m["least-squares:psnr"]),
          op=">=", target=1.0, partly=0.5,
          cause="the misses are where the low-rank model itself barely helps: in the full run "
                "of 2026-12-02 one of 18 trials (a digit, 30 % of the entries measured), where "
                "the SNN's 5.65 dB is below least squares' 6.87 dB, nuclear-norm minimization "
                "reaches only 7.30 dB and factorized GD 5.90 dB (docs/fidelity.md §9)"),
)

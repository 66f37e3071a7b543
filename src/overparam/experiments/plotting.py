"""Shared plotting helpers for the experiments' figures.

One consistent style for every figure of the report, and the few recurring pieces the papers'
figures are made of: a curve of a per-cell statistic with a mean ± sd or median + quartiles band,
and a straight-line fit on log-log axes (the papers' scaling laws). Matplotlib does the drawing;
only these small conventions are written here.

The helpers use matplotlib's object-oriented API (:class:`matplotlib.figure.Figure`, no
``pyplot``), so they need no display, keep no global figure state and are safe in worker
processes.

Examples
--------
>>> from overparam.experiments import plotting
>>> fig, ax = plotting.new_figure()
>>> plotting.stat_curve(ax, rows, x="n", metric="error", label="GD")    # doctest: +SKIP
>>> slope = plotting.loglog_fit(ax, xs, ys, label="fit")              # doctest: +SKIP
>>> plotting.finish(ax, xlabel="n (measurements)", ylabel="relative error", log="xy")
>>> plotting.save(fig, path)                                          # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .spec import aggregate

__all__ = [
    "STYLE",
    "band",
    "declutter_ticks",
    "finish",
    "fit_power_law",
    "grouped_stats",
    "loglog_fit",
    "new_figure",
    "save",
    "stat_curve",
]

#: rcParams of every report figure: readable fonts at the report's display size, light grid.
STYLE: dict = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linestyle": "-",
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "savefig.bbox": "tight",
}


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 5.0, height: float = 3.6,
               squeeze: bool = True, **subplot_kw) -> tuple[Figure, Axes | np.ndarray]:
    """A figure in the report style with ``nrows × ncols`` axes of ``width × height`` inches each.

    Returns ``(fig, ax)`` where ``ax`` is one ``Axes`` when ``squeeze`` and the grid is 1 × 1,
    otherwise an array of axes (as :meth:`matplotlib.figure.Figure.subplots`).
    """
    import matplotlib as mpl

    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=squeeze, subplot_kw=subplot_kw or None)
        # rc_context only lasts for this block: apply the grid style to the axes themselves.
        for ax in np.atleast_1d(axes).ravel():
            ax.grid(True, alpha=STYLE["grid.alpha"])
    return fig, axes


def finish(ax: Axes, *, xlabel: str, ylabel: str, title: str | None = None,
           log: str = "", legend: bool = True) -> Axes:
    """Label the axes (say the units in the label), set log scales and draw the legend.

    Parameters
    ----------
    ax : Axes
    xlabel, ylabel : str
        Axis labels, with units, e.g. ``"m (measurements)"`` or ``"time (s)"``.
    title : str, optional
    log : str, default=""
        Which axes are logarithmic: ``""``, ``"x"``, ``"y"`` or ``"xy"``.
    legend : bool, default=True
        Draw a legend when some artist has a label.
    """
    if set(log) - {"x", "y"}:
        raise ValueError(f"log must be made of 'x' and 'y', got {log!r}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if "x" in log:
        ax.set_xscale("log")
    if "y" in log:
        ax.set_yscale("log")
    if legend and ax.get_legend_handles_labels()[0]:
        # A light box: where the best corner still crosses a curve, the text stays readable.
        ax.legend(frameon=True, framealpha=0.85, facecolor="white", edgecolor="none")
    return ax


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders created) and return the path.

    Overlapping tick labels are thinned out or turned first (:func:`declutter_ticks`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    declutter_ticks(fig)
    fig.savefig(path, format="png", dpi=STYLE["savefig.dpi"], bbox_inches="tight")
    return path


def band(ax: Axes, x: Sequence[float], center: Sequence[float], low: Sequence[float],
         high: Sequence[float], *, label: str | None = None, color=None, marker: str = "o",
         alpha: float = 0.2, **line_kw):
    """A line through ``center`` with a shaded band from ``low`` to ``high``.

    Use it for mean ± sd (``low = mean - sd``) or median with quartiles. Returns the line.
    """
    (line,) = ax.plot(x, center, marker=marker, label=label, color=color, **line_kw)
    ax.fill_between(np.asarray(x, dtype=float), np.asarray(low, dtype=float),
                    np.asarray(high, dtype=float), color=line.get_color(), alpha=alpha,
                    linewidth=0)
    return line


def stat_curve(ax: Axes, rows: Iterable[Mapping], *, x: str, metric: str,
               where: Mapping | None = None, stat: str = "median", label: str | None = None,
               color=None, marker: str = "o", positive: bool = False, **line_kw):
    """Plot a metric against parameter ``x`` over the stored rows, with a spread band.

    Parameters
    ----------
    ax : Axes
    rows : iterable of Row
        Rows as the runner returns them (``{"params", "metrics", ...}``).
    x : str
        Parameter on the horizontal axis.
    metric : str
        Scalar metric on the vertical axis.
    where : mapping, optional
        Keep only rows whose parameters equal these values (e.g. ``{"method": "gd"}``).
    stat : {"median", "mean"}, default="median"
        ``"median"`` draws median with quartiles; ``"mean"`` draws mean ± one sd.
    label, color, marker
        Passed to the line.
    positive : bool, default=False
        Clip the band's lower edge to the smallest positive value (for log axes).

    Returns
    -------
    list of dict
        The statistics plotted (from :func:`grouped_stats`).
    """
    stats = grouped_stats(rows, x, metric, where=where)
    if not stats:
        return stats
    xs = np.array([s[x] for s in stats], dtype=float)
    if stat == "median":
        center = np.array([s["median"] for s in stats])
        low, high = np.array([s["q25"] for s in stats]), np.array([s["q75"] for s in stats])
    elif stat == "mean":
        center = np.array([s["mean"] for s in stats])
        sd = np.array([s["sd"] for s in stats])
        low, high = center - sd, center + sd
    else:
        raise ValueError(f"stat must be 'median' or 'mean', got {stat!r}")
    if positive:
        floor = np.min(center[center > 0]) / 10 if np.any(center > 0) else 1e-300
        low = np.maximum(low, floor)
    band(ax, xs, center, low, high, label=label, color=color, marker=marker, **line_kw)
    return stats


def grouped_stats(rows: Iterable[Mapping], x: str, metric: str, *,
                  where: Mapping | None = None) -> list[dict]:
    """:func:`~overparam.experiments.aggregate` of ``metric`` by parameter ``x``, filtered.

    Only rows whose parameters match ``where`` (and that have ``x``) are kept.
    """
    where = dict(where or {})
    kept = [r for r in rows
            if x in r["params"] and all(r["params"].get(k) == v for k, v in where.items())]
    return aggregate(kept, [x], metric)


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares fit of ``log y = slope · log x + intercept``; returns ``(slope, intercept)``.

    Non-positive or non-finite points are left out (they have no logarithm). Natural logs.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        raise ValueError("a power-law fit needs at least two positive, finite points")
    slope, intercept = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(slope), float(intercept)


def loglog_fit(ax: Axes, x: Sequence[float], y: Sequence[float], *, label: str | None = "fit",
               color: str = "k", linestyle: str = "--", **line_kw) -> float:
    """Fit a power law to ``(x, y)``, draw it over the data's x-range and return the slope.

    The label gets the fitted slope appended (``"fit (slope 1.02)"``). Set log scales on the
    axes (e.g. ``finish(ax, ..., log="xy")``) for the line to look straight.
    """
    slope, intercept = fit_power_law(x, y)
    xs = np.asarray(x, dtype=float)
    xs = xs[np.isfinite(xs) & (xs > 0)]
    grid = np.geomspace(xs.min(), xs.max(), 50)
    text = None if label is None else f"{label} (slope {slope:.2f})"
    ax.plot(grid, np.exp(intercept) * grid**slope, color=color, linestyle=linestyle,
            label=text, **line_kw)
    return slope


#: Pixels of free space required between neighbouring tick labels.
_TICK_GAP = 2.0


def _visible_labels(axis, minor: bool = False) -> list:
    ticks = axis.get_minor_ticks() if minor else axis.get_major_ticks()
    lo, hi = sorted(axis.get_view_interval())
    out = []
    for tick in ticks:
        label = tick.label1
        if label.get_visible() and label.get_text() and lo <= tick.get_loc() <= hi:
            out.append(label)
    return out


def _overlap(boxes: list, vertical: bool) -> bool:
    """Whether any two of the label boxes (sorted along the axis) come closer than the gap."""
    spans = sorted((b.y0, b.y1) if vertical else (b.x0, b.x1) for b in boxes)
    return any(b[0] < a[1] + _TICK_GAP for a, b in itertools.pairwise(spans))


def _is_number(text: str) -> bool:
    text = text.replace("−", "-").replace("$", "").replace("\\mathdefault", "")
    try:
        float(text.strip("{}"))
    except ValueError:
        return "^" in text  # mathtext powers such as 10^{-6}
    return True


def declutter_ticks(fig: Figure, max_rounds: int = 8) -> None:
    """Make the tick labels of every axes of ``fig`` stop overlapping.

    Minor tick labels that collide are dropped; colliding numeric major labels are thinned
    (every k-th kept, k as small as possible); colliding text labels on the x axis are
    turned 35° instead, so that no category loses its name.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.ticker import NullFormatter

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    for _ in range(max_rounds):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        changed = False
        for ax in fig.axes:
            for axis, vertical in ((ax.xaxis, False), (ax.yaxis, True)):
                changed |= _declutter_axis(axis, vertical, renderer, NullFormatter)
        if not changed:
            return


def _declutter_axis(axis, vertical: bool, renderer, null_formatter) -> bool:
    """One round of :func:`declutter_ticks` on one axis; returns whether it changed anything."""
    major = _visible_labels(axis)
    minor = _visible_labels(axis, minor=True)
    major_boxes = [lab.get_window_extent(renderer) for lab in major]
    if minor and _overlap(major_boxes + [lab.get_window_extent(renderer) for lab in minor],
                          vertical):
        axis.set_minor_formatter(null_formatter())
        return True
    if len(major) < 2 or not _overlap(major_boxes, vertical):
        return False
    texts = [lab.get_text() for lab in major]
    if not vertical and not all(_is_number(t) for t in texts):
        if all(lab.get_rotation() == 35 for lab in major):
            return False  # already turned: nothing more to do without losing names
        for lab in major:
            lab.set_rotation(35)
            lab.set_horizontalalignment("right")
            lab.set_rotation_mode("anchor")
        return True
    locs = [tick.get_loc() for tick in axis.get_major_ticks()
            if tick.label1 in major]
    for step in range(2, len(locs) + 1):
        keep = list(range(0, len(locs), step))
        if not _overlap([major_boxes[i] for i in keep], vertical):
            break
    axis.set_ticks([locs[i] for i in keep], labels=[texts[i] for i in keep])
    return True

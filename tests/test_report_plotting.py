"""Shared plotting helpers of the experiments' figures."""

import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from overparam.experiments import plotting


def _rows():
    # error = 3 n^-2 times a per-trial factor; factors 0.5, 1, 1.5 give median 1, mean 1, sd 0.5.
    return [{"params": {"n": n, "method": m}, "metrics": {"error": 3.0 * n**-2.0 * f}}
            for n in (2, 4, 8, 16) for f in (0.5, 1.0, 1.5) for m in ("gd", "other")]


def test_fit_power_law_recovers_exponent_and_skips_bad_points():
    x = np.array([1.0, 2, 4, 8, 16, 0, -1])
    y = np.concatenate([5.0 * x[:5] ** -1.5, [3.0, np.nan]])
    slope, intercept = plotting.fit_power_law(x, y)
    assert slope == pytest.approx(-1.5) and np.exp(intercept) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="two positive"):
        plotting.fit_power_law([1.0, -2.0], [1.0, 1.0])


def test_grouped_stats_handles_a_parameter_named_n():
    stats = plotting.grouped_stats(_rows(), "n", "error", where={"method": "gd"})
    assert [s["n"] for s in stats] == [2, 4, 8, 16]
    assert all(s["count"] == 3 for s in stats)
    assert stats[0]["median"] == pytest.approx(0.75) and stats[0]["sd"] == pytest.approx(0.375)


@pytest.mark.parametrize("stat", ["median", "mean"])
def test_stat_curve_band_and_loglog_fit(tmp_path, stat):
    fig, ax = plotting.new_figure()
    stats = plotting.stat_curve(ax, _rows(), x="n", metric="error", stat=stat,
                                where={"method": "gd"}, label="gd")
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [2, 4, 8, 16])
    np.testing.assert_allclose(line.get_ydata(), 3.0 * np.array([2, 4, 8, 16.0]) ** -2)
    band = ax.collections[0].get_paths()[0].vertices
    low = 3.0 * 16.0**-2 * (0.5 if stat == "mean" else 0.75)  # lower edge at n = 16
    assert band[:, 1].min() == pytest.approx(low)
    slope = plotting.loglog_fit(ax, [s["n"] for s in stats], [s[stat] for s in stats])
    assert slope == pytest.approx(-2.0)
    plotting.finish(ax, xlabel="n (samples)", ylabel="error", log="xy", title="t")
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "n (samples)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["gd", "fit (slope -2.00)"]
    path = plotting.save(fig, tmp_path / "deep" / "f.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_bad_options():
    _, ax = plotting.new_figure()
    with pytest.raises(ValueError, match="log"):
        plotting.finish(ax, xlabel="x", ylabel="y", log="z")
    with pytest.raises(ValueError, match="stat"):
        plotting.stat_curve(ax, _rows(), x="n", metric="error", stat="max")
    assert plotting.stat_curve(ax, _rows(), x="n", metric="missing") == []
    _, axes = plotting.new_figure(2, 3)
    assert axes.shape == (2, 3)


def _boxes(fig, labels):
    renderer = fig.canvas.get_renderer()
    return [lab.get_window_extent(renderer) for lab in labels if lab.get_text()]


def _overlaps(boxes, vertical=False):
    spans = sorted((b.y0, b.y1) if vertical else (b.x0, b.x1) for b in boxes)
    return sum(b[0] < a[1] for a, b in itertools.pairwise(spans))


def test_save_removes_overlapping_tick_labels(tmp_path):
    fig, (crowded, names, logs) = plotting.new_figure(1, 3, width=2.2)
    crowded.plot(np.arange(60), np.arange(60))
    crowded.set_xticks(range(60))
    crowded.set_yticks(range(60))
    names.bar(range(6), range(6))
    categories = [f"method number {i}" for i in range(6)]
    names.set_xticks(range(6), labels=categories)
    logs.plot([1e-7, 1.0], [1.0, 2.0])
    logs.set_xscale("log")
    logs.set_xticks(np.geomspace(1e-7, 1, 8))
    FigureCanvasAgg(fig).draw()
    assert _overlaps(_boxes(fig, crowded.get_xticklabels())) > 10  # the problem is real
    plotting.save(fig, tmp_path / "t.png")
    for ax in (crowded, logs):
        assert _overlaps(_boxes(fig, ax.get_xticklabels())) == 0
        assert _overlaps(_boxes(fig, ax.get_yticklabels()), vertical=True) == 0
    kept = [t.get_text() for t in crowded.get_xticklabels()]
    assert kept[0] == "0" and 2 < len(kept) < 30
    # Category names are turned, never dropped.
    assert [t.get_text() for t in names.get_xticklabels()] == categories
    assert all(t.get_rotation() == 35 for t in names.get_xticklabels())


def test_save_leaves_readable_ticks_alone(tmp_path):
    fig, ax = plotting.new_figure()
    ax.plot([1, 2, 3], [1, 4, 9])
    ax.set_xticks([1, 2, 3])
    plotting.save(fig, tmp_path / "t.png")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    assert all(t.get_rotation() == 0 for t in ax.get_xticklabels())

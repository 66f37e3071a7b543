"""The arithmetic of benchmarks/scale_structures.py (growth exponents and the summary)."""

import importlib.util
from pathlib import Path

import numpy as np

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "scale_structures.py"
_SPEC = importlib.util.spec_from_file_location("scale_structures", _PATH)
scale_structures = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(scale_structures)


def test_growth_exponent_is_the_log_log_slope():
    sizes = [300, 1000, 3000]
    assert np.isclose(scale_structures.growth_exponent(sizes, [2e-6 * s**2 for s in sizes]),
                      2.0)
    # failed or missing fits are left out; fewer than two points give NaN
    assert np.isclose(scale_structures.growth_exponent(sizes, [3.0, np.nan, 30.0]), 1.0)
    assert np.isnan(scale_structures.growth_exponent(sizes, [1.0, np.nan, np.nan]))


def _rows(structure, entries):
    return [{"structure": structure, "size": s, "method": m, "cpu_s": t, "error": 0.1,
             "note": ""} for s, m, t in entries]


def test_summary_gives_ratios_per_size_and_an_exponent_per_method():
    lines = scale_structures.summary(_rows("group", [(100, "IR", 1.0), (100, "peer", 4.0),
                                                     (1000, "IR", 10.0),
                                                     (1000, "peer", 100.0)]))
    assert lines[0] == "group: time IR / peer by size: 100: 0.25, 1000: 0.10"
    assert "size^1.00" in lines[1] and "size^1.40" in lines[2]


def test_summary_gives_a_ratio_line_per_peer_at_the_sizes_both_ran():
    lines = scale_structures.summary(_rows("low-rank", [(10, "IR", 1.0), (10, "CV peer", 10.0),
                                                        (200, "IR", 20.0),
                                                        (200, "one fit", 40.0)]))
    assert lines[0] == "low-rank: time IR / CV peer by size: 10: 0.10"
    assert lines[1] == "low-rank: time IR / one fit by size: 200: 0.50"
    assert "size^1.00" in lines[2] and "nan" in lines[3] and "nan" in lines[4]


def test_scale_benchmark_mmv_section_prints_times_ratios_and_exponents():
    """benchmarks/scale.py's MMV section runs end to end on tiny sizes (its numbers are not
    checked: a benchmark, not a timed test)."""
    import subprocess
    import sys

    script = _PATH.parent / "scale.py"
    out = subprocess.run([sys.executable, str(script), "--sections", "mmv", "--mmv-sizes", "24",
                          "36", "--mmv-seeds", "1"], capture_output=True, text=True, timeout=600,
                         check=True).stdout
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["N", "M", "K", "|", "IR-MMV"]
    assert [line.split()[0] for line in lines[1:3]] == ["24", "36"]
    assert "growth exponent of CPU time in N (MMV sizes): IR-MMV N^" in out

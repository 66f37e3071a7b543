"""The reproduction report (HTML, Markdown) and the `reproduce` and `report` commands."""

import dataclasses
import re
from html.parser import HTMLParser

import typer
from typer.testing import CliRunner

from overparam.experiments.cli import register_commands
from overparam.experiments.papers.demo import POWER_LAW, SLEEP
from overparam.experiments.report import write_report
from overparam.experiments.runner import run_experiments, run_serial
from overparam.experiments.spec import Claim, Verdict, format_number
from overparam.experiments.store import ResultStore


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.tables, self.text = [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "a":
            self.links.append(attrs.get("href"))
        elif tag == "table":
            self.tables += 1

    def handle_data(self, data):
        self.text.append(data)


def _parse(path):
    page = _Page()
    page.feed(path.read_text())
    page.text = " ".join(" ".join(page.text).split())
    return page


def _failing():
    return dataclasses.replace(
        SLEEP, name="t-report-failing", grid={"delay": [0.0], "cell": list(range(4)),
                                             "fail": [True]}, quick_grid=None, trials=1)


def _cli():
    app = typer.Typer()
    register_commands(app)
    return app


def test_report_has_figures_tables_claims_and_errors(tmp_path):
    store = tmp_path / "results.sqlite"
    results = run_experiments([POWER_LAW, _failing()], quick=True, store=store,
                              outdir=tmp_path / "run", progress=False)
    n_failed = len(results[1].errors)
    assert n_failed > 0
    report = write_report(store, tmp_path / "report")
    page = _parse(report.html)

    # Every figure the page shows exists, is a PNG, and has alt text.
    assert [img["src"] for img in page.images] == ["figures/demo-power-law.png"]
    for img in page.images:
        assert (report.html.parent / img["src"]).read_bytes()[:4] == b"\x89PNG"
        assert img["alt"]
    for href in page.links:
        if not href.startswith("#"):
            assert (report.html.parent / href).exists(), href
    # The claim beside the measured number, from summarize().
    assert POWER_LAW.claim in page.text
    slope = format_number(results[0].summary["slope"])
    assert f"slope: {slope}" in page.text
    # A verdict per declared claim, and the overview of verdicts per paper.
    (claim,) = POWER_LAW.claims
    assert claim.statement in page.text and claim.criterion in page.text
    verdict = report.sections[0].outcomes[0][1].verdict
    assert verdict is not Verdict.NOT_EVALUATED and verdict.value in page.text
    assert "how much of the papers holds" in page.text and "all papers" in page.text
    # Overview, machine, runs and the aggregate table (mean ± sd per cell).
    assert page.tables >= 4
    assert "n (mean ± sd)" not in page.text and "error (mean ± sd)" in page.text
    for n in POWER_LAW.quick_grid["n"]:
        assert re.search(rf"\b{n}\b", page.text)
    assert "cpu_count" in page.text and "python" in page.text
    # The failing experiment (not registered) is still reported, with its failures.
    assert "t-report-failing" in page.text and "Not a registered experiment" in page.text
    assert f"{n_failed} trials failed" in page.text
    assert "demo failure for seed" in page.text
    assert report.n_errors == n_failed

    md = report.markdown.read_text()
    assert "![demo-power-law](figures/demo-power-law.png)" in md
    assert f"**Paper's claim.** {POWER_LAW.claim}" in md
    assert f"slope = {slope}" in md and "| n | error (mean ± sd) |" in md
    assert f"**{verdict.value}**" in md


def test_report_from_store_alone_and_mode_choice(tmp_path):
    store = tmp_path / "s.sqlite"
    run_experiments([POWER_LAW], quick=True, store=store, progress=False)
    run_experiments([POWER_LAW], quick=False, trials=1, store=store, progress=False)
    # No run outputs exist: the report draws the figure again from the stored rows.
    auto = write_report(store, tmp_path / "auto")
    (section,) = auto.sections
    assert not section.quick and len(section.rows) == len(POWER_LAW.cells())
    assert (tmp_path / "auto" / "figures" / "demo-power-law.png").exists()
    assert (tmp_path / "auto" / "data" / "demo-power-law.csv").exists()
    # Rows come back in grid order with the spec's values, as the runner gives them.
    strip = [{k: v for k, v in r.items() if k != "time"} for r in section.rows]
    assert strip == [{k: v for k, v in r.items() if k != "time"}
                     for r in run_serial(POWER_LAW, trials=1)]
    quick = write_report(store, tmp_path / "quick", quick=True)
    assert quick.sections[0].quick and len(quick.sections[0].rows) == 8
    with ResultStore(store) as db:
        assert write_report(db, tmp_path / "again").sections[0].summary == section.summary
        # A trial of a cell no longer in the grid is left out, and the page says so.
        stale = db.records("demo-power-law", quick=False)[0]
        stale.params = {"n": 3}
        db.add(stale)
        again = write_report(db, tmp_path / "again").sections[0]
    assert len(again.rows) == len(section.rows)
    assert "1 stored trials of cells no longer in the grid" in again.table_note


def test_report_survives_a_broken_plot_and_summary(tmp_path):
    def bad_plot(rows, path):
        raise RuntimeError("plot is broken")

    def bad_summary(rows):
        raise RuntimeError("summary is broken")

    exp = dataclasses.replace(POWER_LAW, name="t-broken", plot=bad_plot, summarize=bad_summary)
    results = run_experiments([exp], quick=True, outdir=tmp_path / "run", progress=False)
    assert not results[0].ok and "plot is broken" in results[0].plot_error
    assert "summary is broken" in results[0].summary["error"]


def test_cli_reproduce_then_report(tmp_path):
    cli = _cli()
    res = CliRunner().invoke(cli, ["reproduce", "--quick", "--include-demo", "--only", "demo-*",
                                   "-j", "1", "-o", str(tmp_path), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "2 experiments in" in res.output and "report.html" in res.output
    html = (tmp_path / "report.html").read_text()
    assert "demo-power-law" in html and "demo-sleep" in html
    assert (tmp_path / "demo-power-law.png").exists() and (tmp_path / "demo-sleep.csv").exists()

    (tmp_path / "report.html").unlink()
    res = CliRunner().invoke(cli, ["report", "-o", str(tmp_path), "--only", "demo-sleep"])
    assert res.exit_code == 0, res.output
    assert "1 experiments" in res.output
    html = (tmp_path / "report.html").read_text()
    assert "demo-sleep" in html and "demo-power-law" not in html

    res = CliRunner().invoke(cli, ["report", "-o", str(tmp_path / "nothing")])
    assert res.exit_code != 0 and "no result store" in res.output
    res = CliRunner().invoke(cli, ["reproduce", "--only", "no-such-*", "-o", str(tmp_path)])
    assert res.exit_code != 0 and "no experiment matches" in res.output


def test_cli_export(tmp_path):
    cli = _cli()
    run_experiments([POWER_LAW], quick=True, store=tmp_path / "results.sqlite", progress=False)
    out = tmp_path / "x.csv"
    res = CliRunner().invoke(cli, ["experiments", "export", "demo-power-law", "--quick",
                                   "-o", str(tmp_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 1 + 8
    res = CliRunner().invoke(cli, ["experiments", "export", "demo-power-law",
                                   "-o", str(tmp_path), "--out", str(out)])
    assert res.exit_code != 0 and "no stored trials" in res.output


def _counting(name):
    """POWER_LAW renamed, with a plot that records the number of rows of each drawing."""
    calls = []

    def counting_plot(rows, path):
        calls.append(len(rows))
        POWER_LAW.plot(rows, path)

    return dataclasses.replace(POWER_LAW, name=name, plot=counting_plot), calls


def test_report_reuses_the_figures_of_a_fresh_run(tmp_path):
    exp, calls = _counting("t-counting")
    store = tmp_path / "s.sqlite"
    results = run_experiments([exp], quick=True, store=store, outdir=tmp_path, progress=False)
    report = write_report(store, tmp_path, fresh_results=results)
    assert calls == [8]  # drawn once, by the run; the report copied it
    assert (tmp_path / "figures" / "t-counting.png").read_bytes() == (
        tmp_path / "t-counting.png").read_bytes()
    assert report.sections[0].summary == results[0].summary
    # More trials stored than the run holds: the report draws its own figure.
    run_experiments([exp], quick=True, trials=3, store=store, progress=False)
    write_report(store, tmp_path, fresh_results=results)
    assert calls == [8, 12]


_CRAFTED = ("<script>alert(1)</script> <img src=x onerror=alert(2)> | [click](javascript:x) "
            "**bold** `tick` ![i](http://e/x.png)")


def _crafted_experiment():
    def summarize(rows):
        return {"note": _CRAFTED, "ratio": 0.123456789, "tiny": 1.23456e-9,
                "nested": {"a · b": 2.0 / 3.0}, "text number": "1.234567e-03 ± 2.5e-04"}

    claims = (
        Claim("good", "slope within 0.1 of -0.5", lambda rows, s: -0.49, op="==", target=-0.5,
              tolerance=0.1),
        Claim("near", "close-ish", lambda rows, s: 0.1, target=0.0, tolerance=0.05, partly=0.2,
              cause=_CRAFTED),
        Claim("bad", "never", lambda rows, s: 5.0, target=0.0, cause="a known setting"),
        Claim("quick", "needs many rows", lambda rows, s: 0.0, min_rows=1000),
    )
    from overparam.experiments.spec import declare_claims

    exp = dataclasses.replace(POWER_LAW, name="t-crafted", summarize=summarize,
                              description=_CRAFTED, claim=_CRAFTED)
    declare_claims(exp, *claims)
    return exp


def _report_of(exp, tmp_path, **kw):
    store = tmp_path / "s.sqlite"
    results = run_experiments([exp], quick=True, store=store, progress=False)
    return write_report(store, tmp_path / "report", fresh_results=results, **kw)


def test_verdicts_overview_and_people_numbers(tmp_path):
    report = _report_of(_crafted_experiment(), tmp_path, names=["t-crafted"])
    assert report.verdicts == {Verdict.REPRODUCED: 1, Verdict.PARTLY: 1,
                               Verdict.NOT_REPRODUCED: 1, Verdict.NOT_EVALUATED: 1}
    page = _parse(report.html)
    md = report.markdown.read_text(encoding="utf-8")
    # The overview: one row per paper and a total with the count of each verdict.
    assert re.search(r"all papers 1 4 1 1 1 1", page.text)
    assert "| all papers | 1 | 4 | 1 | 1 | 1 | 1 |" in md
    assert "needed: 1000" in page.text and "Cause: a known setting" in page.text
    for text in (page.text, md):
        assert "0.123" in text and "0.123456789" not in text  # 3 significant figures
        assert "1.23 × 10⁻⁹" in text and "e-09" not in text
        assert "0.00123 ± 2.5 × 10⁻⁴" in text  # pre-formatted numbers in text rounded too
        assert "nested: a · b" in text and "0.667" in text  # flattened, UTF-8 kept
        assert "\\u00b7" not in text and "{" not in text.split("Machine")[1]


def test_stored_text_is_escaped_in_html_and_markdown(tmp_path):
    report = _report_of(_crafted_experiment(), tmp_path, names=["t-crafted"])
    html = report.html.read_text(encoding="utf-8")
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = _parse(report.html)
    assert _CRAFTED in page.text  # shown to the reader as text, whole
    assert all(img["src"].startswith("figures/") for img in page.images)
    md = report.markdown.read_text(encoding="utf-8")
    for raw in ("<script>", "<img", "**bold**", "`tick`"):
        assert raw not in md, raw
    # No link or image syntax survives: every bracket is backslash-escaped.
    assert not re.search(r"(?<!\\)\]\(", md.split("## t-crafted")[1].replace(
        "](figures/", "").replace("](data/", ""))
    assert "&lt;script>alert(1)&lt;/script>" in md and "[click\\](javascript" in md
    assert "\\*\\*bold\\*\\*" in md
    # Table rows keep their column count: a stored '|' cannot add a cell.
    for line in md.splitlines():
        if line.startswith("| close-ish"):
            assert line.count(" | ") == 3, line


def test_markdown_code_blocks_cannot_be_closed_from_inside():
    from overparam.experiments.report import md_code

    block = str(md_code("a\n```\n<b>x</b>\n````"))
    assert block.startswith("`````\n") and block.endswith("\n`````")


def test_unchanged_figures_are_not_redrawn(tmp_path):
    exp, calls = _counting("t-redraw")
    store = tmp_path / "s.sqlite"
    # No outdir: the run draws nothing; its results tell the report the (unregistered) spec.
    fresh = run_experiments([exp], quick=True, store=store, progress=False)
    out = tmp_path / "report"
    first = write_report(store, out, fresh_results=fresh)
    figure = out / "figures" / "t-redraw.png"
    assert first.sections[0].redrawn and calls == [8]
    assert (out / "figures" / "t-redraw.png.sha256").exists()
    mtime = figure.stat().st_mtime_ns
    again = write_report(store, out, fresh_results=fresh)
    assert not again.sections[0].redrawn and calls == [8]
    assert figure.stat().st_mtime_ns == mtime
    # New rows: drawn again. A deleted figure: drawn again.
    fresh = run_experiments([exp], quick=True, trials=3, store=store, progress=False)
    assert write_report(store, out, fresh_results=fresh).sections[0].redrawn
    assert calls == [8, 12] and figure.stat().st_mtime_ns != mtime
    figure.unlink()
    write_report(store, out, fresh_results=fresh)
    assert figure.exists() and calls == [8, 12, 12]
    write_report(store, out, fresh_results=fresh)
    assert calls == [8, 12, 12]


def test_units_from_metric_names():
    from overparam.experiments.report import _aggregate_table, unit_of

    assert [unit_of(n) for n in ("time_IR-MMV", "ir_time", "psnr_M-SP", "snr_db", "error",
                                 "timeline")] == ["s", "s", "dB", "dB", "", ""]
    rows = [{"params": {"n": n}, "metrics": {"ir_time": 0.5, "error": 1.0}} for n in (1, 2)]
    columns, table, _ = _aggregate_table(rows)
    assert columns == ["n", "ir_time (s, mean ± sd)", "error (mean ± sd)", "trials"]
    assert table == [["1", "0.5", "1", "1"], ["2", "0.5", "1", "1"]]


def test_markdown_escapes_only_what_markdown_acts_on():
    from overparam.experiments.report import md_escape

    # Readable text stays as it is: comparisons, snake_case names, brackets, ampersands.
    assert md_escape("theory >= 4/3, slope_at_K < 1 & [0.1, 0.2]") == (
        "theory >= 4/3, slope_at_K < 1 & [0.1, 0.2]")
    # What Markdown would act on is made inert.
    assert md_escape("<b>x</b> &amp; _em_ a|b [l](u)") == (
        "&lt;b>x&lt;/b> &amp;amp; \\_em\\_ a\\|b [l\\](u)")
    assert md_escape("# title") == "\\# title" and md_escape("> quote") == "\\> quote"


def test_non_finite_values_are_counted_beside_the_mean():
    from overparam.experiments.report import _aggregate_table

    rows = [{"params": {"n": 1}, "metrics": {"learn_time_x1": v}}
            for v in (1.0, 3.0, float("inf"))]
    rows.append({"params": {"n": 2}, "metrics": {"learn_time_x1": float("inf")}})
    columns, table, _ = _aggregate_table(rows)
    assert columns == ["n", "learn_time_x1 (mean ± sd)", "trials"]  # a flow time: no unit
    assert table == [["1", "2 ± 1.41; 1 of 3: ∞", "3"], ["2", "1 of 1: ∞", "1"]]


def test_overview_lists_every_claim_with_its_verdict_and_cause(tmp_path):
    report = _report_of(_crafted_experiment(), tmp_path)
    md = report.markdown.read_text(encoding="utf-8")
    overview = md.split("### Every claim")[1].split("### Experiments")[0]
    claims = [line for line in overview.splitlines() if line.startswith("| ")][1:]
    from overparam.experiments.spec import list_experiments

    registered = [c for e in list_experiments() if "demo" not in e.tags for c in e.claims]
    assert len(claims) == len(registered) + 4  # the crafted experiment's four claims too
    start = next(i for i, line in enumerate(claims) if "| t-crafted |" in line)
    crafted = claims[start:start + 4]  # the experiment is named on its first row only
    assert all("| t-crafted |" not in line for line in crafted[1:])
    assert any("**not reproduced** | a known setting" in line for line in crafted)
    assert any("**partly** | &lt;script>" in line for line in crafted)
    assert any("**not evaluated** | trials stored" in line for line in crafted)
    assert sum("**not evaluated** | not run |" in line for line in claims) == len(registered)
    page = _parse(report.html)
    assert re.search(r"t-crafted slope within .* never 5 not reproduced a known setting", page.text)

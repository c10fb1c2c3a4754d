"""The reviewer's view of a PR: plots base vs PR, the data diff, times and cost.

Unit tests on the renderer and the strict read-back of results.json; integration tests on real
DVC projects: a project that declares 200 plots, the example project (S3 and MLflow), and the
dvclive-layout shape."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cmarkgfm
import pytest

from lockstep import comment, report as reportmod, review, scaffold
from lockstep.dvcrepo import PlotRead
from lockstep.errors import EXIT_OK, EXIT_USAGE, ArtifactError
from lockstep.report import COMMENT_LIMIT, ConfusionCell, DataRow, Plot, PlotSeries, Report, Timing

from conftest import BIN, PROJECT, ROOT, git, lockstep, run

README_SAMPLE = Path(__file__).parent / "data" / "readme-sample.json"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def line_read(name: str, base_steps: int, pr_steps: int, *, template: str = "") -> PlotRead:
    def rows(steps: int, scale: float) -> list[dict]:
        return [{"step": str(i), "loss": str(scale / (i + 1)), "filename": name, "field": "loss"} for i in range(steps)]

    return PlotRead(id=name, kind="vega", template=template, x="step", y="loss", x_label="step", y_label="loss",
                    base_rows=rows(base_steps, 1.0), pr_rows=rows(pr_steps, 0.8))


def confusion_read(name: str) -> PlotRead:
    def rows(pairs):
        return [{"actual": a, "predicted": p, "filename": name, "field": "predicted"} for a, p, n in pairs for _ in range(n)]

    return PlotRead(id=name, kind="vega", template="confusion", x="actual", y="predicted", x_label="actual",
                    y_label="predicted", base_rows=rows([("0", "0", 50), ("0", "1", 5), ("1", "0", 4), ("1", "1", 84)]),
                    pr_rows=rows([("0", "0", 52), ("0", "1", 3), ("1", "0", 4), ("1", "1", 84)]))


# --- unit: the view and its rendering ------------------------------------------------------------


def test_line_series_are_downsampled_to_fifty_points_keeping_both_ends():
    [plot] = review.plots_view([line_read("train/loss.tsv", 30, 1000)])
    [series] = plot.series
    assert (series.base_points, series.pr_points) == (30, 1000)
    assert len(series.base_x) == 30 and len(series.pr_x) == 50 == len(series.pr_y)
    assert series.pr_x[0] == 0 and series.pr_x[-1] == 999  # first and last step kept
    assert plot.changed and plot.kind == "line"
    text = reportmod.fit(Report(project="p", plots=[plot]))
    chart = text[text.index("```mermaid"): text.index("```", text.index("```mermaid") + 3)]
    assert 'x-axis "step" 0 --> 999' in chart
    assert len(re.search(r"line \[(.*)\]", chart).group(1).split(",")) == 50
    assert len(re.search(r"bar \[(.*)\]", chart).group(1).split(",")) == 50
    assert "base covers step 0–29 only" in text  # the shorter side is said, not hidden


def test_scatter_points_are_binned_along_x():
    rows = [{"x": str(i), "y": str(i % 7), "filename": "s.json", "field": "y"} for i in range(500)]
    read = PlotRead(id="s.json", kind="vega", template="scatter", x="x", y="y", pr_rows=rows)
    [plot] = review.plots_view([read])
    assert plot.kind == "scatter" and len(plot.series[0].pr_x) == 50
    assert plot.series[0].pr_x[0] == pytest.approx(4.5)  # the mean x of the first 10 points
    assert any("averaged in up to 50 bins" in note for note in plot.notes)


def test_confusion_matrix_is_a_table_with_the_change_per_cell():
    [plot] = review.plots_view([confusion_read("plots/confusion.csv")])
    assert plot.kind == "confusion"
    assert {(c.actual, c.predicted): (c.base, c.pr) for c in plot.cells} == {
        ("0", "0"): (50, 52), ("0", "1"): (5, 3), ("1", "0"): (4, 4), ("1", "1"): (84, 84)}
    text = reportmod.render(Report(project="p", plots=[plot]))
    assert "| **0** | 52 (+2) | 3 (-2) |" in text
    assert "| **1** | 4 | 84 |" in text


def test_categorical_x_and_y_without_a_template_are_a_confusion_matrix():
    read = confusion_read("cm.csv")
    read.template = ""
    read.pr_rows = [{**row, "actual": "cat" if row["actual"] == "0" else "dog",
                     "predicted": "cat" if row["predicted"] == "0" else "dog"} for row in read.pr_rows]
    read.base_rows = []
    [plot] = review.plots_view([read])
    assert plot.kind == "confusion" and {c.actual for c in plot.cells} == {"cat", "dog"}


def test_images_are_listed_with_their_sizes_and_embedded_only_in_the_page():
    read = PlotRead(id="images", kind="image", base_images=[("a.png", PNG)], pr_images=[("a.png", PNG + b"12"), ("b.svg", b"<svg onload=alert(1)>")])
    [plot] = review.plots_view([read])
    assert [(i.name, i.base_size, i.pr_size, i.changed) for i in plot.images] == [
        ("a.png", len(PNG), len(PNG) + 2, True), ("b.svg", None, 21, True)]
    text = reportmod.render(Report(project="p", plots=[plot]))
    assert "| a.png | 70 B | 72 B | 🔀 changed |" in text
    page = review.plots_html([read], title="t", base_label="b", pr_label="p")
    assert page.count("data:image/png;base64,") == 2
    assert "<svg onload" not in page and "21 bytes (not embedded)" in page  # only raster images are embedded


def test_page_is_self_contained_and_escapes_what_the_repository_names():
    hostile = line_read("<script>alert(1)</script>", 3, 3)
    page = review.plots_html([hostile, confusion_read("c.csv")], title="t <b>", base_label="b", pr_label="p")
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "default-src 'none'" in page  # no script, no load from elsewhere
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<polyline" in page and "52 <span" in page


def test_hostile_names_stay_inert_in_the_comment():
    evil = "@admin [x](https://evil.example) <img src=x> ```\n#1"
    plot = Plot(id=evil, kind="line", x_label=evil, y_label=evil, changed=True, notes=[evil],
                series=[PlotSeries(name=evil, pr_x=[0.0, 1.0], pr_y=[1.0, 2.0], pr_points=2)])
    cm = Plot(id=evil, kind="confusion", changed=True, cells=[ConfusionCell(evil, evil, 1, 2)])
    rep = Report(project="p", plots=[plot, cm], data_compared=True,
                 data=[DataRow(evil, "added", pr_size=5)], times=[Timing("training", 3.0, source=evil)])
    text = reportmod.fit(rep)
    html = cmarkgfm.github_flavored_markdown_to_html(text)
    assert "<img" not in html and 'href="https://evil' not in html
    assert "@admin" not in text.replace("@\u2060", "")
    mermaid = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert mermaid and all("```" not in block and "<" not in block and "[x]" not in block for block in mermaid)


def test_times_and_cost_are_shown():
    rep = Report(project="p", price_per_minute=0.008,
                 times=[Timing("evaluation", 90.0, source="dvc repro of evaluate"), Timing("training", 600.0, 300.0, "dvclive"),
                        Timing("validation", 150.0)])
    text = reportmod.render(rep)
    assert "evaluation in CI **1 min 30 s** ≈ 0.012" in text
    assert "training **10 min 00 s** (base 5 min 00 s)" in text
    assert "lockstep validate **2 min 30 s** ≈ 0.02" in text
    assert "cost at 0.008 per runner minute" in text
    assert "≈" not in reportmod.render(Report(project="p", times=[Timing("evaluation", 90.0)]))


def test_data_diff_has_a_one_line_summary_and_a_collapsed_table():
    rep = Report(project="p", data_compared=True, data=[
        DataRow("data/raw", "modified", True, 1_000_000, 1_500_000, 10, 12, 2, 1, 0),
        DataRow("models/model.pkl", "modified", False, 280_045, 59_289),
        DataRow("data/extra.csv", "added", False, None, 2048),
    ])
    text = reportmod.render(rep)
    assert "<details><summary>Data and models: 1 added, 2 modified output(s) (+274.7 KiB)</summary>" in text
    assert "| data/raw/ | ✏️ modified | 976.6 KiB | 1.4 MiB | 10 → 12 (2 added, 1 modified) |" in text
    assert "| models/model.pkl | ✏️ modified | 273.5 KiB | 57.9 KiB |  |" in text
    assert "no DVC\\-tracked" not in text
    assert "no DVC-tracked data or model changed" in reportmod.render(Report(project="p", data_compared=True))


def many_plots(count: int) -> list[PlotRead]:
    reads = []
    for index in range(count):
        if index % 10 == 0:
            reads.append(confusion_read(f"eval/confusion_{index:03d}.csv"))
        elif index % 10 == 1:
            reads.append(PlotRead(id=f"images/{index:03d}.png", kind="image", base_images=[("x.png", PNG)], pr_images=[("x.png", PNG + b"1")]))
        else:
            reads.append(line_read(f"dvclive/plots/metrics/m{index:03d}.tsv", 120, 150))
    return reads


def test_two_hundred_plots_fit_the_comment_and_say_what_was_left_out(tmp_path):
    rep = Report(project="p", plots=review.plots_view(many_plots(200)), plots_file=reportmod.PLOTS_FILE,
                 workflow_run_url="https://github.com/o/r/actions/runs/5")
    body = reportmod.fit(rep)
    assert len(body) <= COMMENT_LIMIT
    shown = body.count("<details><summary>eval/") + body.count("<details><summary>dvclive/") + body.count("<details><summary>images/")
    left = int(re.search(r"… (\d+) more plot\(s\) not shown here", body).group(1))
    assert 10 < shown and shown + left == 200
    assert "`plots.html` in the [report artifact](https://github.com/o/r/actions/runs/5)" in body
    assert body.count("<details>") == body.count("</details>")  # every section closed, none cut in half
    # results.json stays within the fork path's bounds and renders back the same comment
    text = rep.to_json()
    assert len(text.encode()) < reportmod.RESULTS_MAX_BYTES
    assert reportmod.fit(reportmod.from_json(text)) == body


@pytest.mark.parametrize(("path", "value", "message"), [
    (("plots", 0, "kind"), "<b>", "kind must be one of"),
    (("plots", 0, "series", 0, "pr_y"), ["NaN"], "must hold finite numbers"),
    (("plots", 0, "series", 0, "pr_y"), list(range(101)), "at most 100 values"),
    (("plots", 0, "series", 0, "pr_x"), [1.0], "as many values"),
    (("plots", 0, "changed"), "yes", "changed must be true or false"),
    (("plots", 1, "cells", 0, "pr"), -1, "whole number"),
    (("plots_file",), "../../evil.html", "plots_file must be empty or plots.html"),
    (("data", 0, "change"), "renamed<script>", "change must be one of"),
    (("data", 0, "pr_size"), 1.5, "whole number"),
    (("times", 0, "id"), "<b>fast</b>", "id must be one of"),
    (("times", 0, "seconds"), -3, "number of seconds"),
    (("price_per_minute",), "free", "price_per_minute must be a number"),
])
def test_fork_artifact_with_a_malformed_review_field_is_refused(tmp_path, path, value, message):
    rep = Report(project="p", plots=review.plots_view([line_read("a.tsv", 3, 3), confusion_read("c.csv")]),
                 plots_file=reportmod.PLOTS_FILE, data_compared=True, data=[DataRow("m.pkl", "modified", pr_size=3)],
                 times=[Timing("evaluation", 3.0)], price_per_minute=0.01)
    data = json.loads(rep.to_json())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(data))
    (folder / "plots.html").write_text("<p>page</p>")
    with pytest.raises(ArtifactError, match=re.escape(message)):
        comment.load_artifact(folder)


def test_fork_artifact_with_plots_page_is_accepted_and_rerendered(tmp_path):
    rep = Report(project="p", plots=review.plots_view(many_plots(12)), plots_file=reportmod.PLOTS_FILE,
                 data_compared=True, data=[DataRow("m.pkl", "modified", False, 1, 2)], times=[Timing("evaluation", 3.0)])
    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "results.json").write_text(rep.to_json())
    (folder / "report.md").write_text("<script>never posted</script>")
    (folder / "plots.html").write_text(review.plots_html(many_plots(12), title="t", base_label="b", pr_label="p"))
    back = comment.load_artifact(folder)
    assert reportmod.fit(back) == reportmod.fit(rep)


def test_price_input_is_checked(tmp_path):
    proc = lockstep("validate", "--working-directory", str(tmp_path), "--runner-price-per-minute", "cheap", cwd=tmp_path)
    assert proc.returncode == EXIT_USAGE
    assert "runner-price-per-minute' must be a number from 0" in proc.stdout + proc.stderr


# --- the README's sample comment -----------------------------------------------------------------


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("<!-- sample-comment:start -->")
    end = text.index("<!-- sample-comment:end -->")
    return text[start:end].split("\n", 1)[1].strip("\n-").strip()


def sample_as_readme_shows_it() -> str:
    """The README shows the comment rendered from tests/data/readme-sample.json (the results.json
    of a real validation run), its headline a level down and without the hidden marker."""
    rep = reportmod.from_json(README_SAMPLE.read_text())
    body = reportmod.fit(rep).split("\n", 1)[1]  # no marker line
    return body.replace("## ", "#### ", 1).strip()


def test_readme_sample_comment_is_what_the_renderer_makes():
    assert readme_block() == sample_as_readme_shows_it(), (
        "README's sample comment and the renderer drifted: paste the output of "
        "`python -c 'from test_review import sample_as_readme_shows_it as s; print(s())'` (in tests/) into README.md")


# --- integration: real DVC projects ------------------------------------------------------------


def _project_with_many_plots(root: Path, count: int) -> tuple[Path, str, str, Path]:
    """A DVC project whose evaluation writes `count` plots (lines, confusion matrices, images),
    a base commit and a PR that changes the evaluation's param; the CI clone of the PR."""
    repo = scaffold.Repo.create(root, folder=".")
    origin, dev = repo.origin, repo.dev
    (dev / "evaluate.py").write_text(
        "import base64, json, os, yaml\n"
        "p = yaml.safe_load(open('params.yaml'))['evaluate']\n"
        "os.makedirs('plots', exist_ok=True)\n"
        f"png = base64.b64decode({base64.b64encode(PNG).decode()!r})\n"
        f"for i in range({count}):\n"
        "    if i % 10 == 0:\n"
        "        open(f'plots/cm{i:03d}.csv', 'w').write('actual,predicted\\n' + '0,0\\n' * (50 + p['shift']) + '0,1\\n' * 5 + '1,1\\n' * 40)\n"
        "    elif i % 10 == 1:\n"
        "        open(f'plots/img{i:03d}.png', 'wb').write(png + b'x' * p['shift'])\n"
        "    else:\n"
        "        json.dump([{'step': s, 'loss': (1 + p['shift']) / (s + 1)} for s in range(100)], open(f'plots/loss{i:03d}.json', 'w'))\n"
        "json.dump({'score': 0.5 + p['shift'] / 100}, open('metrics.json', 'w'))\n"
    )
    (dev / "params.yaml").write_text("evaluate:\n  shift: 0\n")
    plots = []
    for i in range(count):
        if i % 10 == 0:
            plots.append(f"  - plots/cm{i:03d}.csv:\n      template: confusion\n      x: actual\n      y: predicted\n")
        elif i % 10 == 1:
            plots.append(f"  - plots/img{i:03d}.png\n")
        else:
            plots.append(f"  - plots/loss{i:03d}.json:\n      x: step\n      y: loss\n")
    (dev / "dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: python evaluate.py\n    deps: [evaluate.py]\n    params: [evaluate]\n"
        "    outs:\n      - plots:\n          cache: false\n    metrics:\n      - metrics.json:\n          cache: false\n"
        "plots:\n" + "".join(plots)
    )
    (dev / "lockstep.yaml").write_text("version: 1\ngates:\n  score: {direction: higher, min: 0.1}\n")
    dvc = str(BIN / "dvc")
    run(dvc, "init", "-q", cwd=dev)
    run(dvc, "remote", "add", "-d", "storage", str(root / "dvc-remote"), cwd=dev)
    run(dvc, "repro", "-q", cwd=dev)
    git("add", "-A", cwd=dev)
    git("commit", "-q", "-m", "base", cwd=dev)
    git("push", "-q", "origin", "HEAD:main", cwd=dev)
    base = git("rev-parse", "HEAD", cwd=dev)
    git("checkout", "-q", "-b", "pr", cwd=dev)
    (dev / "params.yaml").write_text("evaluate:\n  shift: 3\n")
    run(dvc, "repro", "-q", cwd=dev)
    git("add", "-A", cwd=dev)
    git("commit", "-q", "-m", "pr", cwd=dev)
    git("push", "-q", "origin", "HEAD:pr", cwd=dev)
    head = git("rev-parse", "HEAD", cwd=dev)
    checkout = root / "ci"
    git("clone", "-q", "--depth", "1", "-b", "pr", f"file://{origin}", str(checkout), cwd=root)
    return checkout, base, head, root / "report"


@pytest.mark.integration
def test_validation_of_a_project_with_200_plots(tmp_path):
    checkout, base, head, report_dir = _project_with_many_plots(tmp_path, 200)
    proc = lockstep("validate", "--base-sha", base, "--head-sha", head, "--pr-number", "7", "--report-dir", str(report_dir),
                    "--workflow-run-url", "https://github.com/o/r/actions/runs/9", cwd=checkout)
    assert proc.returncode == EXIT_OK, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads((report_dir / "results.json").read_text())
    assert len(results["plots"]) == 200 and all(p["changed"] for p in results["plots"])
    kinds = {p["kind"] for p in results["plots"]}
    assert kinds == {"line", "confusion", "image"}
    cm = next(p for p in results["plots"] if p["id"] == "plots/cm000.csv")
    assert {"actual": "0", "predicted": "0", "base": 50, "pr": 53} in cm["cells"]
    page = (report_dir / "plots.html").read_text()
    assert page.count("<section>") == 200 and page.count("data:image/png;base64,") == 40
    # the comment the fork path would post: under the limit, saying what it left out
    rep = comment.load_artifact(report_dir, server_url="https://github.com", repository="o/r", run_conclusion="success")
    body = reportmod.fit(rep)
    assert len(body) <= COMMENT_LIMIT
    assert re.search(r"… \d+ more plot\(s\) not shown here \(\d+ changed\)", body)
    assert "`plots.html` in the [report artifact](https://github.com/o/r/actions/runs/9)" in body
    timing = {t["id"]: t for t in results["times"]}
    assert timing["evaluation"]["seconds"] > 0 and timing["validation"]["seconds"] >= timing["evaluation"]["seconds"]
    assert results["data_compared"] is True and results["data"] == []  # no DVC-cached output here


@pytest.mark.integration
def test_example_project_pr_shows_plots_data_and_cost(consumer, tmp_path):
    base = git("rev-parse", "HEAD", cwd=consumer.dev)
    git("checkout", "-q", "-b", "feature", cwd=consumer.dev)
    consumer.set_param("n_estimators: 100", "n_estimators: 20")
    consumer.dvc("repro")
    consumer.dvc("push")
    head = consumer.commit("fewer trees", push="feature")
    checkout = consumer.clone("ci-feature", branch="feature", depth=1)
    report_dir = tmp_path / "report"
    proc = lockstep("validate", "--working-directory", PROJECT, "--base-sha", base, "--head-sha", head, "--pr-number", "12",
                    "--report-dir", str(report_dir), "--runner-price-per-minute", "0.008",
                    "--repository", "acme/churn-model", cwd=checkout)
    assert proc.returncode in (EXIT_OK, 1), proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads((report_dir / "results.json").read_text())
    [plot] = results["plots"]
    assert plot["id"] == "plots/confusion.csv" and plot["kind"] == "confusion"
    cells = {(c["actual"], c["predicted"]): (c["base"], c["pr"]) for c in plot["cells"]}
    assert sum(base for base, _ in cells.values()) == sum(pr for _, pr in cells.values()) == 143  # the test split
    assert plot["changed"] == any(b != p for b, p in cells.values())
    [model] = results["data"]
    assert (model["path"], model["change"], model["is_dir"]) == ("models/model.pkl", "modified", False)
    assert model["pr_size"] < model["base_size"]  # 20 trees pickle smaller than 100
    assert results["price_per_minute"] == 0.008
    assert [t["id"] for t in results["times"]] == ["evaluation", "validation"]
    body = reportmod.fit(comment.load_results(report_dir / "results.json"))
    assert "<details><summary>Data and models: 1 modified output(s) (−" in body
    assert "| models/model.pkl | ✏️ modified |" in body
    assert "Plots: 1 of 1 changed" in body or "Plots: 0 of 1 changed" in body
    assert "PR count (change vs base)" in body and "cost at 0.008 per runner minute" in body
    assert "Content-Security-Policy" in (report_dir / "plots.html").read_text()


@pytest.mark.integration
def test_dvclive_layout_plots_and_data_diff(tmp_path):
    from test_shapes import SHAPES, make_repo, open_pr, validate

    shape = next(s for s in SHAPES if s.name == "dvclive-layout")
    repo = make_repo(shape, tmp_path)
    base, head, checkout = open_pr(repo, "better", steps=50)
    proc, results, checks = validate(repo, checkout, base, head)
    assert proc.returncode == EXIT_OK, proc.stdout[-6000:]
    [plot] = results["plots"]
    assert plot["id"] == "eval/plots/acc.json" and plot["kind"] == "line" and plot["changed"] is True
    [series] = plot["series"]
    accuracy = next(row for row in results["metrics"] if row["name"] == "accuracy")
    assert series["base_points"] == series["pr_points"] == 1
    assert series["pr_y"] == [pytest.approx(accuracy["pr"], abs=1e-6)] and series["base_y"] == [pytest.approx(accuracy["base"], abs=1e-6)]
    rows = {row["path"]: row for row in results["data"]}
    assert rows["models/model.json"]["change"] == "modified"
    assert rows["eval"]["is_dir"] is True and rows["eval"]["files_modified"] >= 1
    assert rows["eval"]["base_files"] == rows["eval"]["pr_files"] == 2

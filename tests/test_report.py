"""The run report: every section in order, self-contained HTML, Markdown beside valid PNGs, "not available"
lines for what a run lacks, the CLI command, crash safety, and the app's download."""
import dataclasses
import html
import re
import shutil

import pandas as pd
import pytest

from core.cli.main import main
from core.evaluate.cross_corpus import run_test_predictions
from core.evaluate.evaluation import split_estimates
from core.report.document import FIGURES, Image, Paragraph, ReportDocument, Section, Table, render_html, render_markdown
from core.report.report import PUBLISHED_NOTE, REPORT_HTML, REPORT_MD, TITLES, save_report, write_report
from core.store.evaluation_store import Evaluation
from core.store.evaluation_store import save_evaluation
from core.store.run_store import RunStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained_report(app_data, tmp_path_factory):
    """The report of the tiny run of `app_data` (which has an ablation partner), analysis on."""
    run = RunStore(app_data / "runs").latest()
    out = tmp_path_factory.mktemp("report") / "report"
    return run, write_report(run, out, cache_root=app_data / "cache")


def _sections(page: str) -> dict[str, str]:
    """Section title -> its HTML, in the page's order."""
    found = re.findall(r"<section>\n<h2>(.*?)</h2>(.*?)</section>", page, flags=re.S)
    return {html.unescape(title): body for title, body in found}


def test_report_holds_every_section_in_order(trained_report):
    run, path = trained_report
    page = path.read_text()
    sections = _sections(page)
    assert list(sections) == list(TITLES)
    assert run.run_id in page and "train.use_unlabelled = true" in sections[TITLES[0]]
    assert "<th>precision</th>" in sections[TITLES[1]] and "<td>fp32</td>" in sections[TITLES[1]]  # per epoch
    assert re.search(r"<td>-?\d\.\d{3} \[-?\d\.\d{3}, -?\d\.\d{3}\]</td>", sections[TITLES[2]])  # CCC [low, high]
    assert html.escape(PUBLISHED_NOTE) in sections[TITLES[2]] and "0.6732" in sections[TITLES[2]]
    assert "CCC difference [95 % CI]" in sections[TITLES[3]]  # the ablation partner is stored
    assert "epsilon2 (shuffled)" in sections[TITLES[4]]  # the dependence with its shuffled baseline
    assert "not available: no stored cross-corpus evaluation" in sections[TITLES[5]]
    assert "ε² shuffled" in sections[TITLES[6]] and "−" in sections[TITLES[6]]  # beside its ablation partner
    assert "1 000 resamples" in sections[TITLES[-1]]


def test_report_html_is_self_contained(trained_report):
    page = trained_report[1].read_text()
    assert "http://" not in page and "https://" not in page and 'src="http' not in page
    assert "<link" not in page and "<script" not in page and "@import" not in page and "url(" not in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)


def test_report_figures_are_pngs_the_markdown_refers_to(trained_report):
    out = trained_report[1].parent
    figures = sorted((out / FIGURES).glob("*.png"))
    assert {p.stem for p in figures} == {"training", "cluster_sizes", "test_ccc", "ablation", "dependence"}
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in figures)
    markdown = (out / REPORT_MD).read_text()
    assert all(f"]({FIGURES}/{p.name})" in markdown for p in figures)
    assert [line[3:] for line in markdown.splitlines() if line.startswith("## ")] == list(TITLES)
    assert markdown.count("](figures/") == trained_report[1].read_text().count("<img ")


def test_report_of_an_imported_like_run_says_what_is_missing(app_data, tmp_path):
    """No history, corpus, test predictions or partner: one "not available" line each; a stored
    evaluation is still shown, with its notes."""
    run = RunStore(app_data / "runs").latest()
    folder = tmp_path / "runs" / "imported-like"
    shutil.copytree(run.dir, folder, ignore=shutil.ignore_patterns(
        "history.jsonl", "corpus.parquet", "test_predictions.parquet", "metrics.json", "analysis", "evaluations"))
    imported = dataclasses.replace(run, run_id="imported-like", dir=folder, checksums=None,
                                   info=dataclasses.replace(run.info, kind="official", corpus_size={}))
    predictions = run_test_predictions(run).assign(corpus="demo")
    table = pd.concat({"demo": split_estimates(predictions, run.config.model.attributes)}, names=["corpus"])
    save_evaluation(folder, Evaluation("demo", {"demo": "demo/manifest.csv"}, None, table, predictions,
                                       "2026-01-01T00:00:00+00:00", ["2 rows without labels left out"]))
    sections = _sections(write_report(imported, tmp_path / "out", cache_root=app_data / "cache",
                                      analysis=False).read_text())
    assert list(sections) == list(TITLES)
    assert "not available: an imported model has no corpus of its own" in sections[TITLES[0]]
    assert "not available: an imported model carries no training history" in sections[TITLES[1]]
    assert "not available: run imported-like has no corpus of its own" in sections[TITLES[2]]
    assert html.escape(PUBLISHED_NOTE) in sections[TITLES[2]]  # the published numbers are shown all the same
    assert "not available: an imported model has no ablation partner" in sections[TITLES[3]]
    assert "not available: left out (--no-analysis)" in sections[TITLES[4]]
    assert "2 rows without labels left out" in sections[TITLES[5]] and "CCC [95 % CI]" in sections[TITLES[5]]
    assert not list((tmp_path / "out" / FIGURES).glob("*.png"))


def test_report_cli_writes_the_report_and_refuses_a_file(app_data, tmp_path, capsys):
    runs = str(app_data / "runs")
    assert main(["--runs-dir", runs, "report", "--out", str(tmp_path / "cli"), "--no-analysis"]) == 0
    assert str(tmp_path / "cli" / REPORT_HTML) in capsys.readouterr().out
    assert (tmp_path / "cli" / REPORT_MD).is_file()
    assert main(["--runs-dir", runs, "report", "--out", str(tmp_path / "cli" / REPORT_MD)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_report_crash_never_leaves_a_report_that_looks_complete(tmp_path, monkeypatch):
    document = ReportDocument("r", (Section("s", (Image("f", PNG_MAGIC, "a figure"),)),))
    save_report(document, tmp_path)
    assert (tmp_path / REPORT_HTML).is_file()

    def crash(_):
        raise OSError("disk full")
    monkeypatch.setattr("core.report.report.render_html", crash)
    with pytest.raises(OSError):
        save_report(document, tmp_path)
    assert not (tmp_path / REPORT_HTML).exists()  # the old page is gone, the new one never appeared
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_report_document_escapes_text():
    document = ReportDocument("a <b>", (Section("s & t", (
        Paragraph("<script>x</script> and `code`"), Table(pd.DataFrame({"a|b": ["x|y"], "v": [0.123456]})))),))
    page, markdown = render_html(document), render_markdown(document)
    assert "<script>" not in page and "&lt;script&gt;" in page and "<code>code</code>" in page
    assert "<h2>s &amp; t</h2>" in page and "<td>0.1235</td>" in page
    assert "| a\\|b | v |" in markdown and "| x\\|y | 0.1235 |" in markdown


def test_report_download_on_the_runs_page(app_store):
    """The Runs page offers the report; its loader (run on click) returns the self-contained page."""
    from streamlit.testing.v1 import AppTest

    from app import loaders
    from tests.test_app import APP
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception
    assert [b.proto.label for b in at.get("download_button")] == ["Report (one HTML page)"]
    run = RunStore(app_store / "runs").latest()
    page = loaders.load_report_html(run.run_id).decode("utf-8")
    assert page.startswith("<!DOCTYPE html>") and run.run_id in page

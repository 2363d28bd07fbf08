"""`srtbench report`: the static site, opened from disk in a real browser (Chromium driven by Playwright): every page
renders without a console error, every number shown is its CSV value, a click on a header sorts, labels stay text."""

from __future__ import annotations

import io
import os
import shutil
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from srtbench import results
from srtbench.cli import main
from srtbench.tables import fixed
from tests import shipped
from tests.test_cards import AT_OUTCOMES, HOSTILE, SEEDS, sha, write_results

pytestmark = pytest.mark.xdist_group("browser")  # under `make test`, one worker starts Chromium, once
BROWSERS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


def _browser_path() -> str | None:
    """A Chromium to drive: $SRTBENCH_CHROMIUM, else the system's, else Playwright's own download (None: none)."""
    for path in (os.environ.get("SRTBENCH_CHROMIUM"), *BROWSERS, shutil.which("chromium")):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install .[dev])")
    path = _browser_path()
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(**({"executable_path": path} if path else {}))
        except sync_api.Error as err:  # no system browser and no downloaded one
            if os.environ.get("CI"):
                raise  # CI installs chromium, so it must never skip
            pytest.skip(f"no Chromium to drive (apt-get install chromium): {str(err).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site of tests/test_cards.py's results folder, built in a folder that also holds AT's training metrics
    beside its checkpoint (runs/at.metrics.csv), where the rows' relative checkpoint path leads."""
    root = tmp_path_factory.mktemp("site")
    write_results(root / "results")
    (root / "runs").mkdir()
    (root / "runs" / "at.metrics.csv").write_text("epoch,loss,natural_loss,robust_loss,train_acc,clean_acc,robust_acc\n"
                                                  "1,1.5,1.2,0.9,55,60,40\n2,1.1,0.8,0.7,70,72,50\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        out = CliRunner().invoke(main, ["report", "results", "--out", "site", "--no-paper"])
    assert out.exit_code == 0, out.output
    return root / "site"


class Tab:
    """One browser tab, reused page after page (a new tab costs more than the page), with the console errors and
    warnings and the uncaught exceptions of the page it opened last."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1300, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path: Path):
        self.errors.clear()
        self.page.goto(path.resolve().as_uri())
        return self.page


@pytest.fixture(scope="module")
def tab(browser):
    one = Tab(browser)
    yield one
    one.page.close()


def _rows(frame, label: str):
    return frame[(frame["label"] == label) & (frame["fraction"] == 1.0)]


def test_every_page_renders_without_a_console_error_and_labels_stay_text(site, tab):
    """No error, no warning (a Content Security Policy violation is one), the one script of ours and no image: the
    labels `<script>...` and `"><img ...>` are text on every page."""
    paths = [site / "index.html", site / "paper.html", *sorted((site / "models").glob("*.html"))]
    assert len(paths) == 2 + 1 + 3 + len(HOSTILE)  # AT, SRT's three seeds, the hostile ones
    for path in paths:
        page = tab.open(path)
        assert page.locator("h1").count() == 1 and not tab.errors, (path.name, tab.errors)
        assert page.locator("script").count() == 1 and page.locator("img").count() == 0, path.name
    text = tab.open(site / "index.html").locator("body").inner_text()
    assert all(label in text for label in HOSTILE)


def test_leaderboard_cells_are_the_csv_values(site, tab):
    frame = results.collect([site.parent / "results"])
    page = tab.open(site / "index.html")
    board = page.locator("table.leaderboard").first
    headers = board.locator("thead th").all_inner_texts()
    column = {h: i for i, h in enumerate(headers)}

    def cells(label: str):  # the row's cells, found by its data-model attribute as the browser reads it
        rows = board.locator("tbody tr")
        found = rows.evaluate_all("(rows, label) => rows.findIndex(r => r.dataset.model === label)", label)
        assert found >= 0, label
        return rows.nth(found).locator("td")

    at = cells("AT")
    assert float(at.nth(column["Clean"]).get_attribute("data-value")) == _rows(frame, "AT")["clean_acc"].iloc[0]
    autoattack = frame[(frame["label"] == "AT") & (frame["attack"] == "autoattack")]["robust_acc"].iloc[0]
    headline = at.nth(column["AutoAttack / strongest"])
    assert float(headline.get_attribute("data-value")) == autoattack
    assert headline.inner_text().split("\n")[0] == fixed(autoattack) and "AutoAttack" in headline.inner_text()
    assert at.nth(column["Worst case"]).inner_text() == "50.00"  # per example over AT_OUTCOMES' attacks
    assert at.nth(column["Reported"]).inner_text() == "–"  # the paper ran no AutoAttack
    assert cells("SRT (λ = 1)").nth(column["Reported"]).inner_text().startswith("96.60")  # its PGD (MNIST)
    assert "gradient_masking" in at.nth(column["Flags"]).inner_text()
    for label in HOSTILE:
        shown = cells(label).nth(column["AutoAttack / strongest"])
        assert float(shown.get_attribute("data-value")) == _rows(frame, label)["robust_acc"].min()
    srt = cells("SRT (λ = 1)")
    clean, pgd = zip(*SEEDS.values())
    spread = lambda values: f"{fixed(statistics.mean(values))} ± {fixed(statistics.stdev(values))}"  # noqa: E731
    assert srt.nth(column["Clean"]).inner_text() == spread(clean)
    assert srt.nth(column["AutoAttack / strongest"]).inner_text().startswith(spread(pgd))


def test_model_page_attack_rows_are_the_csv_rows(site, tab):
    frame = results.collect([site.parent / "results"])
    page = tab.open(site / "index.html")
    page.locator('tr[data-model="AT"] a').first.click()
    headers = page.locator("table.attacks").first.locator("thead th").all_inner_texts()
    rows = page.locator("table.attacks").first.locator("tr[data-attack]")
    mine = frame[(frame["checkpoint_sha256"] == sha("at")) & frame["attack"].isin(AT_OUTCOMES)]
    assert rows.count() == len(mine)
    columns = {"Clean": "clean_acc", "Robust": "robust_acc", "95% CI low": "robust_ci_low",
               "95% CI high": "robust_ci_high", "n": "n"}
    for i in range(rows.count()):
        row = rows.nth(i)
        csv = mine[(mine["attack"] == row.get_attribute("data-attack")) &
                   (mine["fraction"] == float(row.get_attribute("data-fraction")))].iloc[0]
        for header, column in columns.items():
            cell = row.locator("td").nth(headers.index(header))
            assert float(cell.get_attribute("data-value")) == csv[column], (header, csv["attack"])
            if column != "n":
                assert cell.inner_text() == fixed(csv[column])
    assert page.locator("svg").count() >= 3  # the budget curve (PGD at two fractions) and the training curves


def test_a_click_on_a_header_sorts_its_column(site, tab):
    page = tab.open(site / "index.html")
    board = page.locator("table.leaderboard").first
    clean = board.locator("thead th").all_inner_texts().index("Clean")

    def column() -> list[float]:
        return [float(v) for v in board.locator(f"tbody tr td:nth-child({clean + 1})").evaluate_all(
            "cells => cells.map(c => c.dataset.value)")]

    board.locator("thead th").nth(clean).click()
    assert column() == sorted(column()) and len(set(column())) > 2
    board.locator("thead th").nth(clean).click()
    assert column() == sorted(column(), reverse=True)
    board.locator("thead th").first.click()
    names = board.locator("tbody tr td:first-child > a").all_inner_texts()
    assert names == sorted(names, key=str.lower)


def _not_blank(png: bytes) -> None:
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert len(image.getcolors(maxcolors=1 << 20) or range(1 << 20)) > 20
    assert max(ImageStat.Stat(image).stddev) > 10


def test_the_index_is_drawn(site, tab):
    _not_blank(tab.open(site / "index.html").screenshot(full_page=True))


def test_the_site_of_the_shipped_results_builds(tmp_path, tab):
    """The site of the results git tracks (a copy: never what a run wrote since), opened without an error."""
    try:
        tree = shipped.tree()
    except shipped.NotACheckout as err:
        pytest.skip(str(err))
    out = CliRunner().invoke(main, ["report", str(tree / "results"), "--out", str(tmp_path / "site"), "--no-paper"])
    assert out.exit_code == 0, out.output
    paper = tab.open(tmp_path / "site" / "paper.html")
    assert paper.locator("table.results").count() >= 6 and not tab.errors  # the paper's tables our rows fill
    index = tab.open(tmp_path / "site" / "index.html")
    assert index.locator("table.leaderboard").count() >= 3 and not tab.errors
    _not_blank(index.screenshot())


def report(*args):
    return CliRunner().invoke(main, ["report", *map(str, args), "--no-paper"])


def test_report_never_writes_into_a_folder_it_did_not_make(tmp_path):
    folder = write_results(tmp_path / "results")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    (tmp_path / "file").write_text("")
    done = report(folder, "--out", tmp_path / "mine")
    assert done.exit_code == 2 and done.output.count("\n") == 1, done.output
    assert "holds files that srtbench report did not write" in done.output
    done = report(folder, "--out", tmp_path / "file")  # click's own usage error
    assert done.exit_code == 2 and "is a file" in done.output, done.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_a_rebuild_removes_only_the_pages_it_wrote_before(tmp_path):
    folder = write_results(tmp_path / "results")
    assert report(folder, "--out", tmp_path / "site").exit_code == 0
    pages = {p.name for p in (tmp_path / "site" / "models").iterdir()}
    (tmp_path / "site" / "models" / "mine.html").write_text("a page of mine")
    (folder / "hostile.csv").unlink()
    assert report(folder, "--out", tmp_path / "site").exit_code == 0
    left = {p.name for p in (tmp_path / "site" / "models").iterdir()}
    assert left == {n for n in pages if "AT" in n or "SRT" in n} | {"mine.html"} and len(left) == 5

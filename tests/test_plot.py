"""The gradient-flow picture (--plot) and the self-contained HTML report."""

from __future__ import annotations

import base64
import io
import shlex
import struct
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import gradaudit
from gradaudit.formats import Format, plot, render
from gradaudit.report.types import AuditRun
from tests.conftest import FIXTURES, ROOT, run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input"}


def _png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG is complete and decodes."""
    from matplotlib import image

    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and data.endswith(
        b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", data[16:24])
    pixels = image.imread(io.BytesIO(data), format="png")
    assert pixels.shape[:2] == (height, width)
    assert float(np.std(pixels[..., :3])) > 0.05  # something is drawn, not a blank canvas
    return width, height


@pytest.fixture(scope="module")
def reports() -> dict[str, gradaudit.Report]:
    names = ("dead_relu.keras", "deep_sigmoid.keras", "nested_dead.keras")
    return {name: gradaudit.audit(FIXTURES / name, samples=64) for name in names}


def test_plot_option_writes_a_valid_png(tmp_path: Path) -> None:
    target = tmp_path / "grad_flow.png"
    result = run_cli("audit", str(FIXTURES / "dead_relu.keras"), "--plot", str(target), "-q")
    assert result.exit_code == 1 and "GA102" in result.stdout
    width, height = _png_size(target.read_bytes())
    assert (width, height) == (700, 550)  # 7 × 5.5 inches at 100 dpi


def test_several_models_stack_and_the_picture_is_reproducible(
        reports: dict[str, gradaudit.Report]) -> None:
    two = [reports["dead_relu.keras"], reports["deep_sigmoid.keras"]]
    data = plot.png(two)
    width, height = _png_size(data)
    assert height == 2 * 550 and 700 < width < 1500  # 21 layers widen it
    assert plot.png(two) == data


def test_layers_in_depth_order_with_findings_marked(reports: dict[str, gradaudit.Report]) -> None:
    figure = plot.figure([reports["nested_dead.keras"]])
    (panel,) = figure.subfigs
    grad_ax, unit_ax = panel.axes
    assert grad_ax.get_yscale() == "log" and unit_ax.get_ylim() == (0, 1.05)
    labels = unit_ax.get_xticklabels()
    # The container row "encoder" carries no own variables and no finding: not drawn.
    assert [t.get_text() for t in labels] == ["encoder/enc_hidden", "encoder/enc_dead", "head"]
    assert {t.get_color() for t in labels} == {plot.COLOURS[gradaudit.Severity.ERROR]}
    assert [t.get_text() for t in grad_ax.texts] == ["GA202", "GA102 GA202", "GA202"]
    assert grad_ax.get_legend_handles_labels()[1] == ["gradient RMS", "zero gradient"]
    dead_bars = [bar.get_height() for bar in unit_ax.containers[0]]
    assert dead_bars == [0.0, 1.0, 0.0]


def test_a_zero_kernel_gradient_is_marked_though_the_bias_gradient_is_not_zero(
        reports: dict[str, gradaudit.Report]) -> None:
    report = reports["dead_relu.keras"]
    out = next(row for row in report.layers if row.name == "out")
    (finding,) = [f for f in report.findings if (f.code, f.layer) == ("GA202", "out")]
    assert finding.metrics["variables"] == ["kernel"] and out.grad_rms > 0
    grad_ax, unit_ax = plot.figure([report]).subfigs[0].axes
    assert [t.get_text() for t in unit_ax.get_xticklabels()] == ["pre", "dead", "out"]
    lines = {line.get_label(): list(line.get_xdata()) for line in grad_ax.get_lines()}
    assert lines["gradient RMS"] == [2]  # the bias gradient's RMS is still drawn
    assert lines["zero gradient"] == [0, 1, 2]  # and out is marked as GA202 says


def test_a_healthy_model_has_no_marks() -> None:
    report = gradaudit.audit(FIXTURES / "healthy_mlp.keras", samples=64)
    figure = plot.figure([report])
    grad_ax, unit_ax = figure.subfigs[0].axes
    assert len(grad_ax.texts) == len(grad_ax.patches) == 0  # no annotations, no spans
    assert grad_ax.get_legend_handles_labels()[1] == ["gradient RMS"]
    assert {t.get_color() for t in unit_ax.get_xticklabels()} == {"black"}


class _Page(HTMLParser):
    """Collects text and image sources; checks that every element is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.text: list[str] = []
        self.images: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values["src"] or "")
        if tag in ("link", "script", "iframe") or (tag == "img" and not (
                values["src"] or "").startswith("data:image/png;base64,")):
            self.external.append(tag)
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open.pop() == tag, f"</{tag}> closes {self.open}"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_is_self_contained_and_has_every_finding(tmp_path: Path) -> None:
    names = ["dead_relu.keras", "partly_dead.keras", "healthy_mlp.keras"]
    target = tmp_path / "report.html"
    result = run_cli("audit", *(str(FIXTURES / n) for n in names), str(tmp_path / "gone.h5"),
                     "--format", "html", "--output", str(target), "--samples", "64", "-q",
                     "--verbose")  # every finding, the consequences too (not folded)
    assert result.exit_code == 2 and result.stdout == ""
    page = _Page()
    page.feed(target.read_text(encoding="utf-8"))
    page.close()
    assert page.open == [] and page.external == []
    text = " ".join(" ".join(page.text).split())
    found = 0
    for name in names:
        report = gradaudit.audit(FIXTURES / name, samples=64)
        assert str(FIXTURES / name) in text
        for finding in report.findings:
            row = f"{finding.severity} {finding.code} {finding.layer} {finding.message}"
            assert " ".join(row.split()) in text
            found += 1
    assert found == 5  # dead_relu: 4 errors, partly_dead: 1 warning
    assert "gone.h5" in text and "ERROR:" in text
    assert len(page.images) == len(names)
    for source in page.images:
        _png_size(base64.b64decode(source.split(",", 1)[1]))


def test_html_escapes_what_comes_from_the_model(reports: dict[str, gradaudit.Report]) -> None:
    from dataclasses import replace

    hostile = replace(reports["dead_relu.keras"], path="<script>alert(1)</script>.keras")
    text = render(AuditRun(models=(hostile,), errors=()), Format.HTML)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;.keras" in text


def test_missing_matplotlib_is_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import` sees when absent
    monkeypatch.chdir(tmp_path)
    result = run_cli("audit", str(FIXTURES / "dead_relu.keras"), "--plot", "out.png")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == ("gradaudit: error: --plot needs matplotlib, which is not "
                             f"installed: {plot.INSTALL_HINT}\n")
    assert not (tmp_path / "out.png").exists()


def test_the_docs_command_makes_the_committed_picture(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    page = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    block = page.split("<!-- grad-flow-command -->", 1)[1].split("```")[1]
    command = shlex.split(block.removeprefix("bash").strip())
    assert command[:2] == ["gradaudit", "audit"] and command[-2:] == ["--plot",
                                                                       "docs/grad_flow.png"]
    monkeypatch.chdir(ROOT)  # the command's paths are relative to the repository
    target = tmp_path / "grad_flow.png"
    result = run_cli(*command[1:-1], str(target), "-q")
    assert result.exit_code == 1
    # Same picture size as the committed image (bytes differ across font/matplotlib versions).
    assert _png_size(target.read_bytes()) == _png_size((ROOT / "docs/grad_flow.png").read_bytes())


def test_a_title_names_the_file_not_its_long_path(reports: dict[str, gradaudit.Report]) -> None:
    """A long path was cut off on the left of the title; the HTML's alt text keeps it whole."""
    from dataclasses import replace

    deep = "/".join(["a_directory_with_a_long_name"] * 8)
    models = [replace(reports["dead_relu.keras"], path=f"{deep}/run1/model.keras"),
              replace(reports["deep_sigmoid.keras"], path=f"{deep}/run2/model.keras"),
              replace(reports["nested_dead.keras"], path=f"{deep}/nested_dead.keras")]
    titles = [panel.get_suptitle() for panel in plot.figure(models).subfigs]
    assert [title.partition(": gradient flow (")[0] for title in titles] == [
        "run1/model.keras", "run2/model.keras", "nested_dead.keras"]
    assert plot.figure(models[:1]).subfigs[0].get_suptitle().startswith("model.keras: ")
    page = render(AuditRun(models=(models[0],), errors=()), Format.HTML)
    assert f'alt="gradient flow of {deep}/run1/model.keras"' in page

"""A report as data (sections of paragraphs, tables, figures and preformatted text) and its two renderings:
one self-contained HTML page and Markdown beside its PNG files. Pure text: no disk, no statistics.

The HTML page makes no request of any kind: figures are base64 data URIs, the CSS is inline, it has no
script, and its fonts are the reader's own.
"""
from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass
from typing import Union

import pandas as pd

FIGURES = "figures"  # the folder of the PNG files, beside report.md


@dataclass(frozen=True)
class Paragraph:
    """Text; `code` spans are written between backticks."""
    text: str
    style: str = "text"  # "text"; "note" (a caveat a reader must see); "missing" (a section without its data)


@dataclass(frozen=True)
class Heading:
    text: str  # a sub-heading inside a section


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame  # a named index (or MultiIndex) becomes the leading columns
    caption: str = ""


@dataclass(frozen=True)
class Image:
    name: str  # file stem: written as figures/<name>.png
    png: bytes
    caption: str


@dataclass(frozen=True)
class Code:
    text: str  # shown as is, in a fixed-width font


Block = Union[Paragraph, Heading, Table, Image, Code]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class ReportDocument:
    title: str
    sections: tuple[Section, ...]

    def images(self) -> list[Image]:
        """Every figure of the report, in reading order."""
        return [block for section in self.sections for block in section.blocks if isinstance(block, Image)]


def missing(why: str) -> Paragraph:
    """The one line a section shows instead of its content: "not available: <why>"."""
    return Paragraph(f"not available: {why}", "missing")


def cell_text(value) -> str:
    """A table cell as people read it: 4 significant digits, "—" for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def _rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and body cells of a table, its index (when named) as leading columns."""
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    header = [" · ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    return header, [[cell_text(v) for v in row] for row in frame.itertuples(index=False, name=None)]


# --- HTML ----------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #222;
       max-width: 70rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #eee; }
h3 { font-size: 1.05rem; margin-top: 1.4rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
caption { caption-side: top; text-align: left; color: #555; padding-bottom: .3rem; }
pre { background: #f7f7f7; border: 1px solid #e5e5e5; padding: .6rem; font-size: .85rem; overflow-x: auto; }
code { background: #f2f2f2; padding: 0 .2rem; }
figure { margin: .8rem 0 1.2rem; }
figure img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9rem; }
p.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4rem .6rem; }
p.missing { color: #777; font-style: italic; }
"""


def render_html(document: ReportDocument) -> str:
    """The report as one self-contained HTML page (UTF-8 text)."""
    body = "\n".join(_html_section(section) for section in document.sections)
    title = html.escape(document.title)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
            f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n")


def _html_section(section: Section) -> str:
    return "\n".join([f"<section>\n<h2>{html.escape(section.title)}</h2>",
                      *(_html_block(block) for block in section.blocks), "</section>"])


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        css = f' class="{block.style}"' if block.style != "text" else ""
        return f"<p{css}>{_html_inline(block.text)}</p>"
    if isinstance(block, Heading):
        return f"<h3>{_html_inline(block.text)}</h3>"
    if isinstance(block, Code):
        return f"<pre>{html.escape(block.text)}</pre>"
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        caption = html.escape(block.caption)
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                f"<figcaption>{_html_inline(block.caption)}</figcaption></figure>")
    return _html_table(block)


def _html_table(table: Table) -> str:
    header, rows = _rows(table.frame)
    caption = f"<caption>{_html_inline(table.caption)}</caption>" if table.caption else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{caption}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html_inline(text: str) -> str:
    """Escaped text, with `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


# --- Markdown ------------------------------------------------------------------------------------

def render_markdown(document: ReportDocument) -> str:
    """The report as Markdown; figures are referred to as `figures/<name>.png` beside the file."""
    parts = [f"# {document.title}"]
    for section in document.sections:
        parts.append(f"## {section.title}")
        parts.extend(_markdown_block(block) for block in section.blocks)
    return "\n\n".join(parts) + "\n"


def _markdown_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return {"note": f"> **Note:** {block.text}", "missing": f"*{block.text}*"}.get(block.style, block.text)
    if isinstance(block, Heading):
        return f"### {block.text}"
    if isinstance(block, Code):
        return f"```text\n{block.text}\n```"
    if isinstance(block, Image):
        return f"![{block.caption}]({FIGURES}/{block.name}.png)\n\n*{block.caption}*"
    header, rows = _rows(block.frame)
    lines = [_markdown_row(header), "|" + "---|" * len(header), *(_markdown_row(row) for row in rows)]
    return (f"{block.caption}\n\n" if block.caption else "") + "\n".join(lines)


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

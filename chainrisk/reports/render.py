"""Rendering a :class:`Report`: one self-contained HTML page (plots as data URIs) and a forum post in
Markdown (plots as PNG files beside it), split into numbered parts that fit a forum's post length.

Both show every table with the line that reproduces it; neither adds a number the other lacks.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

from chainrisk.reports.model import Report, Section, Table, Value

# Discourse's default maximum post length is 32,000 characters; leave room for a forum's own additions.
POST_LIMIT = 30_000


def cell(column: str, value: Value, formats: Mapping[str, str]) -> str:
    """A value as both renderings show it: floats to 2 decimals unless the table says otherwise."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, formats.get(column, ",.2f"))
    if isinstance(value, int):
        return format(value, formats.get(column, ","))
    return str(value)


def _heading(report: Report) -> str:
    return (
        f"Chain {report.chain_id} · block {report.block} · {report.period} report for the period starting"
        f" {report.period_start} · generated {report.generated_at}"
    )


# ---------------------------------------------------------------------------------------------- HTML

STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;padding:1rem;
max-width:60rem;color:#1b1f24;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1rem;margin-bottom:.3rem}
table{border-collapse:collapse;width:100%;table-layout:auto;font-size:.85rem}
th,td{border:1px solid #d0d7de;padding:.2rem .4rem;text-align:left;
overflow-wrap:anywhere;word-break:break-word}
th{overflow-wrap:break-word;word-break:normal}
table.wide{font-size:.72rem}table.pairs{width:auto;min-width:50%}
td.n{text-align:right;white-space:nowrap;overflow-wrap:normal;word-break:normal}
img{max-width:100%;height:auto;display:block}
figure{margin:1rem 0}figcaption{font-size:.85rem;color:#57606a}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.5rem;font-size:.75rem;
margin:.3rem 0}
.missing{border-left:4px solid #d4a72c;background:#fff8c5;padding:.4rem .6rem;margin:.5rem 0}
.meta{color:#57606a;font-size:.9rem}
nav ol{columns:2}
"""


def html_page(report: Report) -> str:
    """The whole report as one HTML page with nothing to fetch: every plot is a data URI."""
    e = html.escape
    contents = "".join(f'<li><a href="#{s.key}">{e(s.title)}</a></li>' for s in report.sections)
    body = "\n".join(_html_section(s) for s in report.sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(report.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<h1>{e(report.title)}</h1>\n<p class="meta">{e(_heading(report))}</p>\n'
        f"<nav><ol>{contents}</ol></nav>\n{body}\n</body>\n</html>\n"
    )


def _html_section(section: Section) -> str:
    e = html.escape
    parts = [f'<section id="{section.key}">', f"<h2>{e(section.title)}</h2>"]
    if section.key == "summary":
        parts.append("<ul>" + "".join(f"<li>{e(t)}</li>" for t in section.text) + "</ul>")
    else:
        parts += [f"<p>{e(t)}</p>" for t in section.text]
    parts += [f'<p class="missing">Not available: {e(m)}</p>' for m in section.missing]
    for plot in section.plots:
        data = base64.b64encode(plot.png).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{e(plot.caption)}">'
            f"<figcaption>{e(plot.caption)}</figcaption></figure>"
        )
    parts += [_html_table(t) for t in section.tables]
    parts.append("</section>")
    return "\n".join(parts)


def transposed(table: Table) -> bool:
    """A single row of many columns reads better as (measure, value) lines, and fits a narrow page."""
    return len(table.rows) == 1 and len(table.columns) > 4


def displayed(table: Table) -> tuple[list[str], list[list[str]]]:
    """The header and the cells' texts as both renderings show them: transposed where
    :func:`transposed` says, each value formatted by its column."""
    if transposed(table):
        pairs = zip(table.columns, table.rows[0], strict=True)
        return ["measure", "value"], [[c, cell(c, v, table.formats)] for c, v in pairs]
    texts = [[cell(c, v, table.formats) for c, v in zip(table.columns, r, strict=True)] for r in table.rows]
    return table.columns, texts


def _numbers(table: Table) -> list[list[bool]]:
    """Which displayed cells hold numbers (right-aligned)."""
    values = (
        [[r[1]] for r in zip(table.columns, table.rows[0], strict=True)] if transposed(table) else table.rows
    )
    flags = [[isinstance(v, int | float) and not isinstance(v, bool) for v in r] for r in values]
    return [[False, *f] for f in flags] if transposed(table) else flags


def _html_table(table: Table) -> str:
    e = html.escape
    columns, texts = displayed(table)
    # Column names break after their underscores, not inside a word.
    head = "".join(f"<th>{e(c).replace('_', '_<wbr>')}</th>" for c in columns)
    lines = []
    for row, numbers in zip(texts, _numbers(table), strict=True):
        cells = "".join(
            f"<td{' class=n' if n else ''}>{e(t)}</td>" for t, n in zip(row, numbers, strict=True)
        )
        lines.append(f"<tr>{cells}</tr>")
    rows = "".join(lines) or f'<tr><td colspan="{len(columns)}">no rows</td></tr>'
    label = "SQL" if table.how == "sql" else "command"
    # A smaller font for many columns, so that they fit narrow pages; (measure, value) lines as wide as
    # their text.
    wide = ' class="wide"' if len(columns) > 7 else ' class="pairs"' if transposed(table) else ""
    return (
        f"<h3>{e(table.title)}</h3>\n<table{wide}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>\n"
        f"<p class=meta>Reproduce ({label}):</p><pre>{e(table.reproduce)}</pre>"
    )


# ------------------------------------------------------------------------------------------ Markdown


def markdown_posts(report: Report, limit: int = POST_LIMIT) -> list[str]:
    """The report as forum posts of at most ``limit`` characters each, split between blocks (a heading
    stays with what follows it); several parts are numbered "Part i of n"."""
    blocks = [f"# {_md(report.title)}\n\n*{_md(_heading(report))}*"]
    for section in report.sections:
        blocks += _md_section(section)
    reserve = 40  # the "Part i of n" line
    posts: list[list[str]] = [[]]
    for block in blocks:
        size = sum(len(b) + 2 for b in posts[-1]) + len(block) + reserve
        if posts[-1] and size > limit:
            carried = [posts[-1].pop()] if posts[-1][-1].startswith("## ") else []
            posts.append(carried)
        posts[-1].append(block)
    if len(posts) == 1:
        return ["\n\n".join(posts[0]) + "\n"]
    n = len(posts)
    return [f"**Part {i} of {n}**\n\n" + "\n\n".join(p) + "\n" for i, p in enumerate(posts, start=1)]


def _md_section(section: Section) -> list[str]:
    blocks = [f"## {_md(section.title)}"]
    if section.key == "summary":
        blocks.append("\n".join(f"- {_md(t)}" for t in section.text))
    else:
        blocks += [_md(t) for t in section.text]
    blocks += [f"> **Not available:** {_md(m)}" for m in section.missing]
    blocks += [f"![{_md(p.caption)}]({p.name})" for p in section.plots]
    blocks += [_md_table(t) for t in section.tables]
    return blocks


def _md_table(table: Table) -> str:
    columns, texts = displayed(table)
    numbers = _numbers(table)
    right = [bool(numbers) and all(r[i] for r in numbers) for i in range(len(columns))]
    lines = [f"**{_md(table.title)}**", ""]
    lines.append("| " + " | ".join(_md(c) for c in columns) + " |")
    lines.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    lines += ["| " + " | ".join(_md(t) for t in row) + " |" for row in texts]
    if not texts:
        lines.append("| " + " | ".join(["–"] * len(columns)) + " |")
    fence, label = ("sql", "SQL") if table.how == "sql" else ("sh", "command")
    lines += ["", f"Reproduce ({label}):", "", f"```{fence}", table.reproduce, "```"]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text safe in a Markdown table or paragraph: pipes and opening angle brackets escaped, so no
    renderer takes a cell apart or reads HTML into it."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<").replace("\n", " ")

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


def _html_table(table: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in table.columns)
    lines = []
    for row in table.rows:
        cells = "".join(
            f"<td{' class=n' if isinstance(v, int | float) and not isinstance(v, bool) else ''}>"
            f"{e(cell(c, v, table.formats))}</td>"
            for c, v in zip(table.columns, row, strict=True)
        )
        lines.append(f"<tr>{cells}</tr>")
    rows = "".join(lines) or f'<tr><td colspan="{len(table.columns)}">no rows</td></tr>'
    label = "SQL" if table.how == "sql" else "command"
    return (
        f"<h3>{e(table.title)}</h3>\n<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>\n"
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
    lines = [f"**{_md(table.title)}**", ""]
    lines.append("| " + " | ".join(_md(c) for c in table.columns) + " |")
    lines.append(
        "|" + "|".join("---:" if _numeric(table, i) else "---" for i in range(len(table.columns))) + "|"
    )
    for row in table.rows:
        lines.append(
            "| "
            + " | ".join(_md(cell(c, v, table.formats)) for c, v in zip(table.columns, row, strict=True))
            + " |"
        )
    if not table.rows:
        lines.append("| " + " | ".join(["–"] * len(table.columns)) + " |")
    fence = "sql" if table.how == "sql" else "sh"
    lines += [
        "",
        f"Reproduce ({'SQL' if table.how == 'sql' else 'command'}):",
        "",
        f"```{fence}",
        table.reproduce,
        "```",
    ]
    return "\n".join(lines)


def _numeric(table: Table, index: int) -> bool:
    values = [r[index] for r in table.rows if r[index] is not None]
    return bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _md(text: str) -> str:
    """Text safe in a Markdown table or paragraph: pipes and opening angle brackets escaped, so no
    renderer takes a cell apart or reads HTML into it."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<").replace("\n", " ")

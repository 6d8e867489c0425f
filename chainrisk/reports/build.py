"""Writing a report's files: the HTML page, the Markdown post parts, their PNG plots and a JSON sidecar.

    files = write_report(report, out_dir)   # name -> sha256 of every file written

Every file is written whole under a temporary name and renamed into place, so a reader never sees half a
report; the sidecar (report.json) holds every table's rows and reproduce line for checking.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from chainrisk.inputs import OptionError
from chainrisk.reports.model import Report
from chainrisk.reports.render import html_page, markdown_posts

HTML_NAME = "report.html"
JSON_NAME = "report.json"


def post_names(count: int) -> list[str]:
    return [f"post-{i}.md" for i in range(1, count + 1)]


def check_out(out: Path) -> None:
    """Refuse an --out that exists and is not a folder, or whose parent does not exist."""
    if out.exists() and not out.is_dir():
        raise OptionError(f"--out {out}: not a folder; expected a folder to write the report into")
    if not out.exists() and not out.parent.is_dir():
        raise OptionError(f"--out {out}: folder {out.parent} does not exist; expected an existing parent")


def write_report(report: Report, out: Path) -> dict[str, str]:
    """Write every file of ``report`` into ``out`` (created if missing); name -> sha256."""
    posts = markdown_posts(report)
    contents: dict[str, bytes] = {HTML_NAME: html_page(report).encode()}
    contents.update({name: text.encode() for name, text in zip(post_names(len(posts)), posts, strict=True)})
    contents.update({plot.name: plot.png for plot in report.plots()})
    document = {**report.document(), "files": {"html": HTML_NAME, "posts": post_names(len(posts))}}
    contents[JSON_NAME] = (json.dumps(document, indent=2) + "\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("post-*.md"):  # an earlier report of this folder may have had more parts
        if stale.name not in contents:
            stale.unlink()
    for name, data in contents.items():
        partial = out / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(out / name)
    return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(contents.items())}

"""The projector form of a diff: one self-contained HTML page, large type, one section per file, side by side.

`python -m workbook diff 4 --projector` (make step-4 diff HTML=1) writes build/diffs/step-04.html and prints its
path; the page switches to a unified layout with its button or the `u` key, and on narrow screens by itself.
"""

from __future__ import annotations

import difflib
import html
import os
import sys
from pathlib import Path

from ..diffs import changed_files
from ..registry import ROOT, Step

OUT = ROOT / "build" / "diffs"
CONTEXT = 3
# Two lines this alike (difflib's ratio) are one line edited: shown side by side, the changed characters marked.
SIMILAR = 0.6

_STYLE = """
:root{--add:#d7f5dd;--add-strong:#8fe0a0;--del:#ffe0dc;--del-strong:#ffaaa0;--ink:#1b1f24;--dim:#6e7781}
*{box-sizing:border-box}
body{margin:0;padding:1.2rem 1.6rem 3rem;color:var(--ink);background:#fff;
  font:clamp(18px,1.6vw,30px)/1.4 system-ui,sans-serif}
header{display:flex;align-items:baseline;gap:1rem;flex-wrap:wrap;margin-bottom:.6rem}
h1{font-size:1.5em;margin:0}
header p{margin:0;color:var(--dim)}
button{font:inherit;font-size:.8em;padding:.15em .7em;margin-left:auto;cursor:pointer}
section{margin:1.2rem 0 0}
h2{font-size:1.1em;margin:0 0 .3rem;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
h2 .status{font:600 .7em system-ui,sans-serif;color:var(--dim);margin-left:.6em;text-transform:uppercase}
h2 .count{font:.7em system-ui,sans-serif;margin-left:.5em}
.plus{color:#116329}.minus{color:#a40e26}
table{width:100%;border-collapse:collapse;table-layout:fixed;border:1px solid #d0d7de;
  font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.95em}
td{padding:0 .4em;vertical-align:top;white-space:pre-wrap;overflow-wrap:anywhere}
td.n{width:2.6em;text-align:right;color:var(--dim);user-select:none;font-size:.75em;padding-top:.2em}
td.sign{width:1.1em;padding:0;text-align:center;color:var(--dim)}
.sbs td.old{border-right:2px solid #d0d7de}
tr.gap td{background:#f3f4f6;color:var(--dim);text-align:center;font-family:system-ui,sans-serif;font-size:.7em}
td.add{background:var(--add)}td.del{background:var(--del)}td.empty{background:#f6f8fa}
td.add mark{background:var(--add-strong)}td.del mark{background:var(--del-strong)}
mark{color:inherit;border-radius:3px}
.unified{display:none}
body.as-unified .sbs{display:none}body.as-unified .unified{display:table}
@media (max-width:900px){.sbs{display:none}.unified{display:table}body.as-sbs .sbs{display:table}
  body.as-sbs .unified{display:none}}
"""

_SCRIPT = """
const body=document.body,button=document.getElementById('layout');
const unified=()=>{const t=document.querySelector('table.unified');return !!t&&getComputedStyle(t).display!=='none';};
const label=()=>{button.textContent=unified()?'side by side':'unified';};
function flip(){const to=!unified();body.classList.toggle('as-unified',to);body.classList.toggle('as-sbs',!to);label();}
label();button.addEventListener('click',flip);
document.addEventListener('keydown',e=>{if(e.key==='u'&&!e.ctrlKey&&!e.metaKey&&!e.altKey)flip();});
"""


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _align(old: list[str], new: list[str]) -> list[tuple[int | None, int | None]]:
    """Pair each removed line with the most similar added line still ahead, in order; the rest stand alone."""
    rows, j = [], 0
    for i, line in enumerate(old):
        scores = [(difflib.SequenceMatcher(None, line, other, autojunk=False).ratio(), k)
                  for k, other in enumerate(new[j:], start=j)]
        best = max(scores, default=(0.0, None), key=lambda score: (score[0], -score[1]))
        if best[0] < SIMILAR:
            rows.append((i, None))
            continue
        rows += [(None, k) for k in range(j, best[1])] + [(i, best[1])]
        j = best[1] + 1
    return rows + [(None, k) for k in range(j, len(new))]


def _marked(old: str, new: str) -> tuple[str, str]:
    """Escape a changed pair of lines, wrapping the characters that differ in <mark>."""
    a, b = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        left, right = html.escape(old[i1:i2]), html.escape(new[j1:j2])
        if op == "equal":
            a.append(left)
            b.append(right)
        else:
            a.append(f"<mark>{left}</mark>" if left else "")
            b.append(f"<mark>{right}</mark>" if right else "")
    return "".join(a), "".join(b)


def _rows(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    """Return the side-by-side rows and the unified rows of one file, hunks separated by a gap row."""
    sbs, uni = [], []
    groups = difflib.SequenceMatcher(None, before, after, autojunk=False).get_grouped_opcodes(CONTEXT)
    for index, group in enumerate(groups):
        first = group[0]
        if index or first[1] or first[3]:
            gap = f"line {first[1] + 1} → {first[3] + 1}"
            sbs.append(f'<tr class="gap"><td colspan="4">⋯ {gap}</td></tr>')
            uni.append(f'<tr class="gap"><td colspan="4">⋯ {gap}</td></tr>')
        for op, i1, i2, j1, j2 in group:
            if op == "equal":
                for k in range(i2 - i1):
                    text = html.escape(before[i1 + k]) or " "
                    sbs.append(f'<tr><td class="n">{i1 + k + 1}</td><td class="old">{text}</td>'
                               f'<td class="n">{j1 + k + 1}</td><td>{text}</td></tr>')
                    uni.append(f'<tr><td class="n">{i1 + k + 1}</td><td class="n">{j1 + k + 1}</td>'
                               f'<td class="sign"></td><td>{text}</td></tr>')
                continue
            olds, news = [], []  # (line number, escaped text) or None, aligned row by row
            for i, j in _align(before[i1:i2], after[j1:j2]):
                left, right = (before[i1 + i] if i is not None else None), (after[j1 + j] if j is not None else None)
                if left is not None and right is not None:
                    left, right = _marked(left, right)
                olds.append(None if i is None else (i1 + i + 1, left if j is not None else html.escape(left)))
                news.append(None if j is None else (j1 + j + 1, right if i is not None else html.escape(right)))
            for o, n in zip(olds, news, strict=True):
                left = f'<td class="n">{o[0]}</td><td class="del old">{o[1] or " "}</td>' if o \
                    else '<td class="n"></td><td class="empty old"></td>'
                right = f'<td class="n">{n[0]}</td><td class="add">{n[1] or " "}</td>' if n \
                    else '<td class="n"></td><td class="empty"></td>'
                sbs.append(f"<tr>{left}{right}</tr>")
            uni += [f'<tr><td class="n">{o[0]}</td><td class="n"></td><td class="sign">−</td>'
                    f'<td class="del">{o[1] or " "}</td></tr>' for o in olds if o]
            uni += [f'<tr><td class="n"></td><td class="n">{n[0]}</td><td class="sign">+</td>'
                    f'<td class="add">{n[1] or " "}</td></tr>' for n in news if n]
    return sbs, uni


def _name(project: Step | Path) -> str:
    if isinstance(project, Step):
        return "the final project" if project.id == "final" else f"step {project.number} · {project.title}"
    return Path(project).name


def _dir(project: Step | Path) -> Path:
    return project.path if isinstance(project, Step) else Path(project)


def projector_html(old: Step | Path, new: Step | Path) -> str:
    """Render what changed from `old` to `new` as one self-contained HTML page for a projector."""
    a, b = _dir(old), _dir(new)
    sections = []
    for name in changed_files(old, new):
        before, after = _lines(a / name), _lines(b / name)
        status = "added" if not (a / name).exists() else "removed" if not (b / name).exists() else "changed"
        sbs, uni = _rows(before, after)
        plus = sum('class="add"' in row for row in uni)
        minus = sum('class="del"' in row for row in uni)
        sections.append(
            f'<section id="{html.escape(name)}"><h2>{html.escape(name)}<span class="status">{status}</span>'
            f'<span class="count"><span class="plus">+{plus}</span> <span class="minus">−{minus}</span></span></h2>'
            f'<table class="sbs"><colgroup><col style="width:2.6em"><col><col style="width:2.6em"><col></colgroup>'
            f'{"".join(sbs)}</table>'
            f'<table class="unified">{"".join(uni)}</table></section>'
        )
    title = f"{_name(old)} → {_name(new)}"
    goal = f"<p>{html.escape(new.goal)}</p>" if isinstance(new, Step) else ""
    body = "".join(sections) or "<p>No file changed.</p>"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><header><h1>{html.escape(title)}</h1>{goal}"
        f'<button id="layout" type="button" title="or press u">unified</button></header>{body}'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def default_path(old: Step | Path, new: Step | Path, spans: bool) -> Path:
    """Name the page after what it compares: build/diffs/step-04.html, final.html, step-02-to-04.html."""
    if not isinstance(new, Step):
        return OUT / f"{Path(new).name}.html"
    name = "final" if new.id == "final" else f"step-{new.number:02d}"
    if spans and isinstance(old, Step):
        name = f"step-{old.number:02d}-to-{'final' if new.id == 'final' else f'{new.number:02d}'}"
    return OUT / f"{name}.html"


def _can_open() -> bool:
    """Tell whether a browser window can be opened for someone at this terminal."""
    if os.environ.get("CI") or not sys.stdout.isatty():
        return False
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def write(old: Step | Path, new: Step | Path, path: Path | None = None, spans: bool = False,
          open_it: bool | None = None) -> Path:
    """Write the projector page, print its path, and open it in the browser when someone can see it."""
    path = Path(path) if path else default_path(old, new, spans)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(projector_html(old, new), encoding="utf-8")
    try:
        shown = os.path.relpath(path)
    except ValueError:  # another drive, on Windows
        shown = str(path)
    print(f"workbook: wrote {shown} (open {path.resolve().as_uri()} on the projector)")
    if open_it if open_it is not None else _can_open():
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return path


def screenshot(page_path: Path, png: Path, browser, viewport: dict | None = None) -> int:
    """Render a projector page in a browser (a Playwright one) and save it as a PNG; return its size in bytes."""
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 720})
    try:
        page = context.new_page()
        page.goto(Path(page_path).resolve().as_uri())
        png.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(png), caret="hide", animations="disabled")
    finally:
        context.close()
    return png.stat().st_size


def cmd_projector(old: Step | Path, new: Step | Path, args) -> int:
    """`diff … --projector`: write the page (and, with --screenshot PNG, a picture of it taken in Chromium)."""
    path = write(old, new, spans=args.b is not None, open_it=False if args.screenshot else None)
    if args.screenshot:
        from ..browser import launch

        png = Path(args.screenshot)
        with launch() as browser:
            size = screenshot(path, png, browser)
        print(f"workbook: wrote {png} ({size // 1024} KB)")
    return 0

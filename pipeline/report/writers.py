"""One table, four renderings (report stage, `camloc compare`): markdown, CSV, LaTeX booktabs, static HTML.

A table is first reduced to display strings and a bold mask (`render_cells`), so every format shows
exactly the same numbers and marks exactly the same cells. Output is deterministic text: no dates.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import pandas as pd

MISSING = "–"


@dataclass(frozen=True)
class Column:
    """A displayed column: `key` in the frame, its header, and whether the column's best is bold.

    With `ci` = (low_key, high_key) the cell shows the interval "[low, high]" instead of `key`. With
    `lower_better` the column's best is its minimum.
    """

    key: str
    label: str
    digits: int = 1
    bold_best: bool = False
    ci: tuple[str, str] | None = None
    lower_better: bool = False


@dataclass(frozen=True)
class Cells:
    headers: list[str]
    rows: list[list[str]]
    bold: list[list[bool]]
    numeric: list[bool]  # right-align


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float | int) and not isinstance(value, bool):
        text = f"{value:.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.0"
    return str(value)


def render_cells(df: pd.DataFrame, columns: list[Column]) -> Cells:
    """Display strings and bold flags; a bold cell is one that equals its column's best (maximum, or
    minimum for `lower_better`) as shown."""
    rows = [[] for _ in range(len(df))]
    bold = [[] for _ in range(len(df))]
    numeric = []
    for col in columns:
        if col.ci:
            lo, hi = df[col.ci[0]].to_numpy(), df[col.ci[1]].to_numpy()
            texts = [MISSING if pd.isna(a) else f"[{_fmt(a, col.digits)}, {_fmt(b, col.digits)}]"
                     for a, b in zip(lo, hi, strict=True)]
            flags = [False] * len(df)
            numeric.append(True)
        else:
            values = df[col.key].tolist()
            texts = [_fmt(v, col.digits) for v in values]
            is_num = pd.api.types.is_numeric_dtype(df[col.key])
            numeric.append(bool(is_num))
            best = None
            if is_num and df[col.key].notna().any():
                best = _fmt(float(df[col.key].min() if col.lower_better else df[col.key].max()), col.digits)
            tied = len(set(texts)) == 1  # a column where every row ties has no best
            flags = [bool(col.bold_best and best is not None and t == best and not tied) for t in texts]
        for i, (t, f) in enumerate(zip(texts, flags, strict=True)):
            rows[i].append(t)
            bold[i].append(f)
    return Cells([c.label for c in columns], rows, bold, numeric)


def to_markdown(cells: Cells) -> str:
    """A GitHub-flavoured pipe table, padded so it also lines up in a terminal; best cells in **bold**."""
    shown = [[f"**{t}**" if b else t for t, b in zip(r, rb, strict=True)]
             for r, rb in zip(cells.rows, cells.bold, strict=True)]
    widths = [max([len(h)] + [len(r[j]) for r in shown]) for j, h in enumerate(cells.headers)]

    def line(items: list[str]) -> str:
        padded = [s.rjust(w) if num else s.ljust(w)
                  for s, w, num in zip(items, widths, cells.numeric, strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w + 1) + ":" if num else "-" * (w + 2) for w, num in zip(widths, cells.numeric, strict=True)]
    return "\n".join([line(cells.headers), "|" + "|".join(rule) + "|",
                      *(line(r) for r in shown)]) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "τ": r"$\tau$",
                "–": "--", "δ": r"$\delta$", "↓": r"$\downarrow$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(cells: Cells, caption: str = "", label: str = "") -> str:
    """A booktabs table (needs \\usepackage{booktabs}); best cells in \\textbf."""
    spec = "".join("r" if n else "l" for n in cells.numeric)
    out = [r"\begin{table}[t]", r"\centering", r"\small"]
    if caption:
        out.append(rf"\caption{{{tex_escape(caption)}}}")
    if label:
        out.append(rf"\label{{{label}}}")
    out += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(map(tex_escape, cells.headers)) + r" \\",
            r"\midrule"]
    for r, rb in zip(cells.rows, cells.bold, strict=True):
        items = [rf"\textbf{{{tex_escape(t)}}}" if b else tex_escape(t) for t, b in zip(r, rb, strict=True)]
        out.append(" & ".join(items) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


HTML_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:14px}th,td{padding:4px 10px;border-bottom:1px solid #ddd}
th{background:#f4f4f4;text-align:center}td.num{text-align:right;font-variant-numeric:tabular-nums}
strong{color:#0a5}p.note{max-width:60em}"""


def html_table(cells: Cells) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in cells.headers)
    body = []
    for r, rb in zip(cells.rows, cells.bold, strict=True):
        tds = []
        for t, b, num in zip(r, rb, cells.numeric, strict=True):
            inner = f"<strong>{html.escape(t)}</strong>" if b else html.escape(t)
            tds.append(f'<td class="num">{inner}</td>' if num else f"<td>{inner}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def html_page(title: str, blocks: list[str]) -> str:
    """A static page: inline CSS only, no scripts, nothing fetched from anywhere."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(blocks) + "\n</body>\n</html>\n")


def to_csv(df: pd.DataFrame) -> str:
    """Full-precision-enough, deterministic CSV (4 decimals; NaN as empty)."""
    return df.to_csv(index=False, float_format="%.4f", lineterminator="\n")

"""`ivr stats --chart FILE.html`: the report as one self-contained HTML page with inline SVG charts.

No JavaScript and no plotting library (matplotlib is not a dependency): the page opens offline in
any browser and can be mailed as is. Bars show all calls (light) with the self-served part (dark);
days with an announced outage are shaded red, with the incident in the hover title.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ivr.journal.stats import Report, Share, local_time

_CALLS = "#9ecae1"
_SELF = "#3182bd"
_OUTAGE = "#fdd0c8"
_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.legend span { display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 14px; vertical-align: middle; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
"""


def _fmt(value: int) -> str:
    return f"{value:,}".replace(",", "\u202f")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def column_chart(
    labels: Sequence[str],
    totals: Sequence[int],
    parts: Sequence[int],
    marks: Sequence[str] = (),
    width: int = 1000,
    height: int = 220,
    label_every: int = 1,
) -> str:
    """Vertical bars: totals (light) with parts (dark) inside; a non-empty mark shades the column."""
    left, bottom, top = 56, 24, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(totals, default=0) or 1
    step = plot_w / max(len(labels), 1)
    bar = max(step * 0.8, 1.0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for fraction in (0, 0.5, 1):
        y = top + plot_h * (1 - fraction)
        out.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(round(peak * fraction))}</text>'
        )
    for index, (label, total, part) in enumerate(zip(labels, totals, parts, strict=True)):
        x = left + index * step
        mark = marks[index] if index < len(marks) else ""
        if mark:
            out.append(
                f'<rect x="{x:.1f}" y="{top}" width="{step:.2f}" height="{plot_h}" fill="{_OUTAGE}">'
                f"<title>{escape(mark)}</title></rect>"
            )
        h_total, h_part = plot_h * total / peak, plot_h * part / peak
        tip = escape(
            f"{label}: {_fmt(total)} calls, self-served {_pct(part, total)}" + (f"; {mark}" if mark else "")
        )
        out.append(
            f'<g><title>{tip}</title><rect x="{x:.1f}" y="{top + plot_h - h_total:.1f}" width="{bar:.2f}" '
            f'height="{h_total:.1f}" fill="{_CALLS}"/><rect x="{x:.1f}" y="{top + plot_h - h_part:.1f}" '
            f'width="{bar:.2f}" height="{h_part:.1f}" fill="{_SELF}"/></g>'
        )
        if index % label_every == 0:
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - 8}" text-anchor="middle">{escape(label)}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def bar_list(shares: Sequence[Share], whole: int, with_self: bool = True, width: int = 700) -> str:
    """Horizontal bars, one per share, for topics, languages and outcomes."""
    row, name_w = 22, 170
    height = row * max(len(shares), 1) + 4
    peak = max((s.calls for s in shares), default=0) or 1
    plot_w = width - name_w - 150
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for index, share in enumerate(shares):
        y = index * row + 2
        w_total, w_self = plot_w * share.calls / peak, plot_w * share.self_served / peak
        out.append(f'<text x="{name_w - 6}" y="{y + 14}" text-anchor="end">{escape(share.name)}</text>')
        out.append(
            f'<rect x="{name_w}" y="{y + 3}" width="{w_total:.1f}" height="{row - 6}" fill="{_CALLS}"/>'
        )
        if with_self:
            out.append(
                f'<rect x="{name_w}" y="{y + 3}" width="{w_self:.1f}" height="{row - 6}" fill="{_SELF}"/>'
            )
        extra = f", self-served {_pct(share.self_served, share.calls)}" if with_self else ""
        out.append(
            f'<text x="{name_w + w_total + 6:.1f}" y="{y + 14}">{_fmt(share.calls)} ({_pct(share.calls, whole)}{extra})'
            "</text>"
        )
    out.append("</svg>")
    return "".join(out)


def render_html(report: Report) -> str:
    q = report.query
    outage_text = {i.id: f"outage #{i.id}: {i.text_ru}" for i in report.outages}
    day_marks = ["; ".join(outage_text[i] for i in d.outage_ids) for d in report.days]
    every = max(1, len(report.days) // 12)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="ru"><head><meta charset="utf-8"><title>1414 IVR statistics</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>1414 IVR: {escape(report.first_day or '-')} .. {escape(report.last_day or '-')}</h1>",
        f"<p>Time zone {escape(report.timezone)}; language: {escape(q.language or 'all')}; "
        f"topic: {escape(q.topic or 'all')}.</p>",
        "<table><tr><th>calls</th><th>self-served</th><th>abandoned</th><th>no outcome recorded</th></tr>",
        f"<tr><td>{_fmt(report.calls)}</td><td>{_fmt(report.self_served)} "
        f"({_pct(report.self_served, report.calls)})</td><td>{_fmt(report.abandoned)} "
        f"({_pct(report.abandoned, report.calls)})</td><td>{_fmt(report.unfinished)}</td></tr></table>",
        f'<p class="legend"><span style="background:{_CALLS}"></span>all calls'
        f'<span style="background:{_SELF}"></span>self-served'
        f'<span style="background:{_OUTAGE}"></span>outage announced</p>',
        "<h2>Calls per day</h2>",
        column_chart(
            [d.day for d in report.days],
            [d.calls for d in report.days],
            [d.self_served for d in report.days],
            day_marks,
            label_every=every,
        ),
        "<h2>Calls per hour of day</h2>",
        column_chart(
            [f"{h.hour:02d}" for h in report.hours],
            [h.calls for h in report.hours],
            [h.self_served for h in report.hours],
            width=700,
        ),
        "<h2>Abandoned calls per day</h2>",
        column_chart(
            [d.day for d in report.days],
            [d.abandoned for d in report.days],
            [0] * len(report.days),
            day_marks,
            height=140,
            label_every=every,
        ),
        "<h2>Top topics</h2>",
        bar_list(report.topics, report.calls),
        "<h2>Languages</h2>",
        bar_list(report.languages, report.calls),
        "<h2>Outcomes</h2>",
        bar_list(report.outcomes, report.calls, with_self=False),
        "<h2>Outages</h2>",
    ]
    if report.outages:
        parts.append(
            "<table><tr><th>#</th><th>from</th><th>until</th><th>topics</th><th>kk</th><th>ru</th></tr>"
        )
        for incident in report.outages:
            parts.append(
                f"<tr><td>{incident.id}</td><td>{local_time(incident.starts_at, report.timezone)}</td>"
                f"<td>{local_time(incident.until, report.timezone)}</td>"
                f"<td>{escape(', '.join(incident.topics) or 'all')}</td>"
                f'<td style="text-align:left">{escape(incident.text_kk)}</td>'
                f'<td style="text-align:left">{escape(incident.text_ru)}</td></tr>'
            )
        parts.append("</table>")
    else:
        parts.append("<p>None in this period.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

"""The Insights page at `<public URL>/insights`: the figures as inline SVG charts and tables, each with its CSV and
JSON, readable without JavaScript and with no asset from another host (docs/federation.md)."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from importlib import resources
from string import Template

from aiohttp import web

from connector.services.insights import Figure, Insights, InsightsService
from connector.transport.http import json_response

INSIGHTS: web.AppKey[InsightsService] = web.AppKey("insights", InsightsService)
_TEMPLATE = Template(resources.files("connector.transport").joinpath("templates/insights.html").read_text("utf-8"))
_WIDTH = 640
_BAR_COLOUR = "#2a7ab9"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _bar_chart(figure: Figure) -> str:
    """Horizontal bars of a figure's last column, one per row."""
    values = [float(row[-1]) for row in figure.rows if isinstance(row[-1], int | float)]
    if not values:
        return ""
    top = max(values) or 1.0
    label_w, row_h = 180, 22
    height = row_h * len(values) + 10
    bars = []
    for i, row in enumerate(figure.rows):
        value = float(row[-1])
        width = (_WIDTH - label_w - 70) * value / top
        y = 5 + i * row_h
        bars.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{_e(row[0])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="{row_h - 6}" fill="{_BAR_COLOUR}">'
            f"<title>{_e(row[0])}: {_e(row[-1])}</title></rect>"
            f'<text x="{label_w + width + 4:.1f}" y="{y + 15}">{_e(row[-1])}</text>'
        )
    return (
        f'<svg role="img" aria-label="{_e(figure.title)}" viewBox="0 0 {_WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}">{"".join(bars)}</svg>'
    )


def _box_chart(figure: Figure) -> str:
    """Box plots (min, quartiles, max) of each row: columns 2..6."""
    if not figure.rows:
        return ""
    top = max(float(row[6]) for row in figure.rows) or 1.0
    label_w, row_h, right = 180, 28, 50
    span = _WIDTH - label_w - right

    def x(value: object) -> float:
        return label_w + span * float(str(value)) / top

    height = row_h * len(figure.rows) + 30
    parts = []
    for i, row in enumerate(figure.rows):
        y = 5 + i * row_h
        mid = y + row_h / 2
        low, q1, median, q3, high = row[2:7]
        parts.append(
            f'<text x="{label_w - 6}" y="{mid + 4}" text-anchor="end">{_e(row[0])}</text>'
            f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{mid}" y2="{mid}" stroke="#555"/>'
            f'<rect x="{x(q1):.1f}" y="{y + 4}" width="{max(1.0, x(q3) - x(q1)):.1f}" height="{row_h - 8}" '
            f'fill="#9cc3e4" stroke="#1c5a8a"><title>{_e(row[0])}: median {_e(median)}</title></rect>'
            f'<line x1="{x(median):.1f}" x2="{x(median):.1f}" y1="{y + 4}" y2="{y + row_h - 4}" stroke="#1c5a8a" '
            'stroke-width="3"/>'
        )
    axis_y = height - 20
    ticks = "".join(
        f'<text x="{label_w + span * k / 4:.1f}" y="{axis_y + 14}" text-anchor="middle">{top * k / 4:.0f}</text>'
        for k in range(5)
    )
    return (
        f'<svg role="img" aria-label="{_e(figure.title)}" viewBox="0 0 {_WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}">{"".join(parts)}'
        f'<line x1="{label_w}" x2="{label_w + span}" y1="{axis_y}" y2="{axis_y}" stroke="#999"/>{ticks}</svg>'
    )


def _recycled_chart(figure: Figure) -> str:
    """Bars of each material's mean recycled share on a 0-100 % scale, with the 2031 and 2036 minimums marked."""
    if not figure.rows:
        return ""
    label_w, row_h, right = 180, 26, 40
    span = _WIDTH - label_w - right

    def x(value: object) -> float:
        return label_w + span * float(str(value)) / 100.0

    parts = []
    for i, row in enumerate(figure.rows):
        material, _, mean, _, min_2031, _, min_2036, _ = row
        y = 5 + i * row_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end">{_e(material)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{x(mean) - label_w:.1f}" height="{row_h - 8}" '
            f'fill="{_BAR_COLOUR}">'
            f"<title>{_e(material)}: mean {_e(mean)} %</title></rect>"
            f'<line x1="{x(min_2031):.1f}" x2="{x(min_2031):.1f}" y1="{y + 1}" y2="{y + row_h - 1}" stroke="#c25400" '
            'stroke-width="2" stroke-dasharray="3 2"/>'
            f'<line x1="{x(min_2036):.1f}" x2="{x(min_2036):.1f}" y1="{y + 1}" y2="{y + row_h - 1}" stroke="#8a1c1c" '
            'stroke-width="2"/>'
        )
    axis_y = 5 + len(figure.rows) * row_h + 4
    ticks = "".join(
        f'<text x="{x(k):.1f}" y="{axis_y + 14}" text-anchor="middle">{k} %</text>' for k in (0, 25, 50, 75, 100)
    )
    legend_y = axis_y + 34
    legend = (
        f'<line x1="{label_w}" x2="{label_w + 20}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="#c25400" '
        f'stroke-width="2" stroke-dasharray="3 2"/><text x="{label_w + 26}" y="{legend_y}">minimum from 2031</text>'
        f'<line x1="{label_w + 170}" x2="{label_w + 190}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="#8a1c1c" '
        f'stroke-width="2"/><text x="{label_w + 196}" y="{legend_y}">minimum from 2036</text>'
        f'<rect x="{label_w + 340}" y="{legend_y - 10}" width="20" height="10" fill="{_BAR_COLOUR}"/>'
        f'<text x="{label_w + 366}" y="{legend_y}">mean declared share</text>'
    )
    height = legend_y + 10
    return (
        f'<svg role="img" aria-label="{_e(figure.title)}" viewBox="0 0 {_WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}">{"".join(parts)}'
        f'<line x1="{label_w}" x2="{label_w + span}" y1="{axis_y}" y2="{axis_y}" stroke="#999"/>{ticks}{legend}</svg>'
    )


def _table(figure: Figure) -> str:
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in figure.columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in figure.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(figure: Figure) -> str:
    charts = {"box": _box_chart, "recycled": _recycled_chart}
    chart = charts.get(figure.chart, _bar_chart)(figure)
    if not figure.rows:
        chart = '<p class="note">No group is large enough to be shown yet.</p>'
    suppressed = (
        f'<p class="note">Not shown (fewer batteries or operators than the minimum): '
        f"{_e(', '.join(figure.suppressed))}.</p>"
        if figure.suppressed
        else ""
    )
    return (
        f'<section id="{_e(figure.id)}" aria-labelledby="{_e(figure.id)}-title">'
        f'<h2 id="{_e(figure.id)}-title">{_e(figure.title)}</h2><p>{_e(figure.description)}</p>{chart}'
        f"{_table(figure) if figure.rows else ''}{suppressed}"
        f'<p class="meta">Data: <a href="insights/{_e(figure.id)}.csv">CSV</a> · '
        f'<a href="insights/{_e(figure.id)}.json">JSON</a></p></section>'
    )


def _sources(insights: Insights) -> str:
    items = []
    for source in insights.sources:
        when = source.get("crawledAt")
        crawled = (
            f", crawled {datetime.fromtimestamp(when / 1000, UTC).isoformat(timespec='seconds')}"
            if isinstance(when, int)
            else ""
        )
        who = f" of {_e(source['participant'])}" if source.get("participant") else ""
        items.append(f"<li>{_e(source['kind'])}{who}: {_e(source['passports'])} passports{crawled}</li>")
    return f"<ul>{''.join(items)}</ul>"


def render_page(insights: Insights) -> str:
    """Return the Insights page."""
    generated = datetime.fromtimestamp(insights.generated_at / 1000, UTC).isoformat(timespec="seconds")
    return _TEMPLATE.substitute(
        generated_at=_e(generated),
        batteries=_e(insights.batteries),
        min_batteries=_e(insights.min_batteries),
        min_operators=_e(insights.min_operators),
        figures="".join(_figure(f) for f in insights.figures),
        sources=_sources(insights),
    )


async def insights_page(request: web.Request) -> web.Response:
    """Serve the Insights page, or its figures as JSON for `Accept: application/json`."""
    insights = await request.app[INSIGHTS].insights()
    headers = {"Cache-Control": "public, max-age=60", "Vary": "Accept"}
    accept = request.headers.get("Accept", "")
    if "application/json" in accept and "text/html" not in accept.split(",")[0]:
        return json_response(insights.as_json(), headers=headers)
    return web.Response(text=render_page(insights), content_type="text/html", headers=headers)


async def insights_json(request: web.Request) -> web.Response:
    """Serve every figure as JSON."""
    return json_response((await request.app[INSIGHTS].insights()).as_json())


async def figure_data(request: web.Request) -> web.Response:
    """Serve one figure's data as CSV or JSON, with when and from what it was computed."""
    insights = await request.app[INSIGHTS].insights()
    figure = insights.figure(request.match_info["figure"])
    if figure is None:
        known = ", ".join(f.id for f in insights.figures)
        return json_response(
            {"error": "Not Found", "reason": f"no figure {request.match_info['figure']!r}; the figures are {known}"},
            status=404,
        )
    generated = datetime.fromtimestamp(insights.generated_at / 1000, UTC).isoformat(timespec="seconds")
    if request.match_info["format"] == "csv":
        return web.Response(
            text=figure.as_csv(),
            content_type="text/csv",
            headers={
                "Content-Disposition": f'inline; filename="{figure.id}.csv"',
                "Last-Modified": datetime.fromtimestamp(insights.generated_at / 1000, UTC).strftime(
                    "%a, %d %b %Y %H:%M:%S GMT"
                ),
            },
        )
    body = {**figure.as_json(), "generatedAt": generated, "sources": list(insights.sources)}
    return json_response(body)


def add_routes(app: web.Application, service: InsightsService) -> None:
    """Mount the Insights page and its data on the protocol application."""
    app[INSIGHTS] = service
    app.router.add_get("/insights", insights_page)
    app.router.add_get("/insights.json", insights_json)
    app.router.add_get("/insights/{figure}.{format:csv|json}", figure_data)

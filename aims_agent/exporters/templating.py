"""The period report's templates (`exporters/templates/`): one Jinja2 environment, HTML and
SVG autoescaped (every value a template prints is escaped; a chart is the output of the
autoescaped chart template), Markdown with a `cell` filter that keeps table cells on one line."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def _cell(value: object) -> str:
    """A Markdown table cell: `-` for nothing, no pipes or line breaks inside."""
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _num(value: object, digits: int = 4) -> object:
    return f"{value:.{digits}g}" if isinstance(value, float) else value


def _words(value: object) -> str:
    return "none" if value is None else str(value).replace("_", " ")


ENV = Environment(
    loader=PackageLoader("aims_agent.exporters", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html", "svg"), default=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
ENV.filters.update(cell=_cell, num=_num, words=_words)


def render(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)

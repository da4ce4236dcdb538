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


def environment(package: str, *, escape_by_default: bool) -> Environment:
    """A package's `templates/`: HTML and SVG autoescaped (other names as `escape_by_default`
    says), undefined names an error, block tags leaving no blank lines."""
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "svg"), default=escape_by_default),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


ENV = environment("aims_agent.exporters", escape_by_default=False)
ENV.filters.update(cell=_cell, num=_num, words=_words)


def render(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)

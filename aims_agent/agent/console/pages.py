"""The console's Jinja2 environment: package templates, autoescaped (HTML and SVG), strict about
undefined names, with the two filters the templates share."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

ENV = Environment(
    loader=PackageLoader("aims_agent.agent.console", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html", "svg"), default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters["words"] = lambda v: "-" if v is None else str(v).replace("_", " ")
ENV.filters["num"] = lambda v: f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else v)
ENV.filters["shown"] = lambda v: ("yes" if v else "no") if isinstance(v, bool) else v

"""The console's Jinja2 environment: package templates, autoescaped (HTML, SVG and any other
name), strict about undefined names, with the filters the templates share."""

from __future__ import annotations

from aims_agent.exporters.templating import environment

ENV = environment("aims_agent.agent.console", escape_by_default=True)
ENV.filters["words"] = lambda v: "-" if v is None else str(v).replace("_", " ")
ENV.filters["num"] = lambda v: f"{v:.4g}" if isinstance(v, float) else ("-" if v is None else v)
ENV.filters["shown"] = lambda v: ("yes" if v else "no") if isinstance(v, bool) else v

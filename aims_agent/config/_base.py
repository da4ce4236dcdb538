"""What every config section shares: strict frozen models, environment-variable names, and the
one uniqueness rule."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_name(v: str) -> str:
    if not _ENV_NAME.match(v):
        raise ValueError(f"must be an environment variable name, got {v!r}")
    return v


EnvName = Annotated[str, AfterValidator(_env_name)]


class Strict(BaseModel):
    # NaN passes no bound (every comparison is false) and infinity passes `gt=0`: neither is a
    # setting anybody means, so no number in a config may be one
    # protected_namespaces: settings such as trustyai.model_id; pydantic before 2.10 reserved
    # every `model_` name and warned
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, protected_namespaces=()
    )


def repeated(values: list[str]) -> list[str]:
    return sorted({v for v in values if values.count(v) > 1})


def unique(what: str, values: list[str]) -> None:
    """ValueError `<what> must be unique, repeated: a, b` if any value comes twice."""
    if dupes := repeated(values):
        raise ValueError(f"{what} must be unique, repeated: {', '.join(dupes)}")

"""Render config/config.yaml (every default, documented) from the schema in pipeline.config.

``python -m pipeline.config_doc > config/config.yaml`` regenerates it; a test checks the file
in the repository matches, so defaults and documentation cannot drift apart.
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from pipeline.config import Config, is_execution

HEADER = """\
# FUSU-style dataset build: configuration with every default, documented.
# Generated from pipeline/config.py by `python -m pipeline.config_doc > config/config.yaml`.
# Override any key on the command line, e.g.
#   snakemake --cores 4 --config dataset=mycity 'aois=["aoi/mycity.yaml"]'
# Unknown keys and out-of-range values are rejected when the Snakefile is parsed.
# Secrets (Earth Engine credentials) never go here: see docs/earth-engine.md.
"""


def _scalar(v: object) -> str:
    return json.dumps(v)


def _render(model: BaseModel, indent: int) -> list[str]:
    out: list[str] = []
    pad = "  " * indent
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        desc = field.description
        if isinstance(value, BaseModel):
            out.append(f"{pad}{name}:" + (f"  # {desc}" if desc else ""))
            out.extend(_render(value, indent + 1))
            continue
        if isinstance(value, tuple):
            value = list(value)
        line = f"{pad}{name}: {_scalar(value)}"
        if is_execution(field):
            desc = f"{desc} " if desc else ""
            desc += "[execution setting: changing it reruns nothing]"
        if desc:
            line += f"  # {desc}"
        out.append(line)
    return out


def render() -> str:
    return HEADER + "\n" + "\n".join(_render(Config(), 0)) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")

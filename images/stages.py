"""Prints the part of a Dockerfile one build target is made from, for images/build.sh's tags.

    python3 images/stages.py Dockerfile TARGET

The output is the global ARG lines and every stage TARGET needs (its own, the stages it is FROM,
and those it copies or mounts `--from`), in file order, without comments or blank lines. An
edit to one image's stages (or to a comment) then leaves the other images' tags, and so their
builds, as they were: a change to the scoring stage does not rebuild the 7 GB vllm-cpu image.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FROM = re.compile(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE)
USES = re.compile(r"(?:--|,)from=([^\s,]+)")  # COPY --from=, RUN --mount=...,from=


def instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments and blanks left out."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current = f"{current} {stripped}" if current else stripped
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        out.append(current)
        current = ""
    if current:
        out.append(current)
    return out


def needed(text: str, target: str) -> str:
    header: list[str] = []
    stages: dict[str, list[str]] = {}
    order: list[str] = []
    name = None
    for ins in instructions(text):
        m = FROM.match(ins)
        if m:
            name = m.group(2) or f"#{len(order)}"
            stages[name] = [ins]
            order.append(name)
        elif name is None:
            header.append(ins)
        else:
            stages[name].append(ins)
    if target not in stages:
        raise SystemExit(f"images/stages.py: no stage named {target!r} in the Dockerfile "
                         f"(stages: {', '.join(order)})")
    want, todo = set(), [target]
    while todo:
        stage = todo.pop()
        if stage in want or stage not in stages:  # not a stage: an image (BASE, a registry's)
            continue
        want.add(stage)
        todo.append(FROM.match(stages[stage][0]).group(1))
        for ins in stages[stage][1:]:
            todo.extend(USES.findall(ins))
    return "\n".join(header + [ins for s in order if s in want for ins in stages[s]]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(needed(Path(sys.argv[1]).read_text(), sys.argv[2]))

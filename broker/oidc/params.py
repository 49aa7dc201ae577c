"""Request parameters, each allowed once (RFC 6749 §3.1, checklist A-27)."""

from __future__ import annotations

from flask import Request

from broker.errors import InvalidRequest


class DuplicateParameter(InvalidRequest):
    def __init__(self, name: str) -> None:
        super().__init__(f"the parameter {name} is included more than once")
        self.name = name


def single_params(request: Request, *, query: bool = True, form: bool = True) -> dict[str, str]:
    """Merge query string and form body; a parameter sent twice, or in both, is refused.

    Empty values are treated as absent (RFC 6749 §3.1).
    """
    sources = []
    if query:
        sources.append(request.args)
    if form and request.method == "POST":
        sources.append(request.form)
    out: dict[str, str] = {}
    seen: set[str] = set()
    for source in sources:
        for name in source.keys():
            values = source.getlist(name)
            if name in seen or len(values) > 1:
                raise DuplicateParameter(name)
            seen.add(name)
            if values[0] != "":
                out[name] = values[0]
    return out

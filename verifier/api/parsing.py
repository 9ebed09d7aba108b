"""The parser of a submission: the app's parser processes, with the caller's share."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import Depends, Request

from verifier.api.auth import Caller
from verifier.api.ratelimit import CallerDep
from verifier.core.guard import ParserPool, check_expressions
from verifier.service.submission import Parser


async def parser_dependency(request: Request, caller: CallerDep) -> Parser:
    """:func:`get_parser` as a dependency (it does no I/O: no thread hand-off)."""
    return get_parser(request, caller)


def get_parser(request: Request, caller: Caller) -> Parser:
    """Parses submitted expressions: in the app's parser processes, with the share of the
    caller's key (callers without a key share only the pool's bounded wait), or here if the
    app has no parser processes."""
    pool: ParserPool = request.app.state.parser
    if not pool.processes:
        return check_expressions
    share = None if caller.key_id is None else str(caller.key_id)
    return functools.partial(pool.parse, caller=share)


ParserDep = Annotated[Parser, Depends(parser_dependency)]

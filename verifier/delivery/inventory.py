"""What a broker holds: the checks whose messages wait in a queue or are taken by a worker.

The reconciler asks before it re-publishes a check that was sent long ago (docs/delivery.md,
point 7): a message that is only waiting in line is not lost, and sending it again would make
a queue of N checks grow by N messages on every pass. Each reader here reads at most ``limit``
messages and says whether it read them all (:class:`Held`):

- kombu's Redis transport keeps a queue as one list per priority step (``queue`` for 0,
  ``queue`` + ``sep`` + ``N`` for the others) and the messages a worker has taken, until it
  acknowledges them, in one hash (``unacked``) for every queue;
- kombu's SQLAlchemy transport (the embedded broker) keeps every message as a row of its
  message table, ``visible`` until a worker takes it. A row a worker took stays there,
  invisible, after its task is done, so only visible rows count: a check whose message was
  taken and that is still queued was not claimed by the worker that took it.

A message's check id is the first argument of its task, or its checks' ids a list there (a
chunk: ``CelerySender.send``).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Engine, bindparam, column, inspect, select, table, true

REDIS_CHUNK = 500
"""Messages read from Redis in one round trip."""
MESSAGE_TABLE = "kombu_message"
QUEUE_TABLE = "kombu_queue"
"""kombu's SQLAlchemy transport's tables (its defaults, which ``celery_config`` keeps)."""


class Held(NamedTuple):
    """The checks a broker was seen to hold, and whether every message of the queues asked
    about was read (``complete``); ``read`` counts the messages read."""

    check_ids: frozenset[uuid.UUID]
    complete: bool
    read: int


def check_id_of(payload: Any) -> uuid.UUID | None:
    """The (first) check id of a kombu message of the check task; None for a message that
    carries none."""
    found = check_ids_of(payload)
    return found[0] if found else None


def check_ids_of(payload: Any) -> list[uuid.UUID]:
    """The check ids of a kombu message of the check task (its first argument: one id, or
    a chunk's list of ids); empty for a message that carries none."""
    try:
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        first = json.loads(body)[0][0]
        listed = first if isinstance(first, list) else [first]
        return [uuid.UUID(str(check_id)) for check_id in listed]
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error):
        return []


def _ids(raw_messages: Iterable[bytes | str], *, in_unacked: bool = False) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for raw in raw_messages:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        # The unacked hash keeps [message, exchange, routing key] for each delivery.
        payload = message[0] if in_unacked and isinstance(message, list) and message else message
        found.update(check_ids_of(payload))
    return found


def redis_lists(queue: str, separator: str, priority_steps: Sequence[int]) -> list[str]:
    """The Redis lists of ``queue``, one per priority step, as kombu names them."""
    names = [queue if step == 0 else f"{queue}{separator}{step}" for step in priority_steps]
    return list(dict.fromkeys(names or [queue]))


def redis_held(
    client: Any,
    queues: Sequence[str],
    *,
    separator: str,
    priority_steps: Sequence[int],
    unacked_key: str,
    limit: int,
) -> Held:
    """The checks held by a Redis broker in ``queues`` (every priority step) and in its hash
    of messages taken by workers, reading at most ``limit`` messages.

    Each list is read from its head, where kombu pushes: a worker takes from the tail, so a
    message does not move past the part already read while the list changes.
    """
    found: set[uuid.UUID] = set()
    budget = limit
    complete = True
    lists = [name for queue in queues for name in redis_lists(queue, separator, priority_steps)]
    for name in lists:
        length = int(client.llen(name))
        taken = min(length, budget)
        complete = complete and taken == length
        for start in range(0, taken, REDIS_CHUNK):
            found |= _ids(client.lrange(name, start, min(start + REDIS_CHUNK, taken) - 1))
        budget -= taken
    taken_by_workers = int(client.hlen(unacked_key))
    if taken_by_workers > budget:
        complete = False
    read = 0
    if budget > 0:
        values: list[bytes] = []
        for _, value in client.hscan_iter(unacked_key, count=REDIS_CHUNK):
            values.append(value)
            read += 1
            if read >= budget:
                break
        found |= _ids(values, in_unacked=True)
    return Held(frozenset(found), complete, limit - budget + read)


def table_held(engine: Engine, queues: Sequence[str], limit: int) -> Held:
    """The checks whose messages wait, visible, in ``queues`` of kombu's SQLAlchemy transport
    (its tables in ``engine``'s database), reading at most ``limit`` messages."""
    if not inspect(engine).has_table(MESSAGE_TABLE):
        return Held(frozenset(), True, 0)  # no message was ever sent through this broker
    messages = table(
        MESSAGE_TABLE, column("id"), column("payload"), column("queue_id"), column("visible")
    )
    named = table(QUEUE_TABLE, column("id"), column("name"))
    query = (
        select(messages.c.payload)
        .join(named, named.c.id == messages.c.queue_id)
        .where(named.c.name.in_(bindparam("queues", expanding=True)))
        .where(messages.c.visible == true())
        .order_by(messages.c.id)
        .limit(limit + 1)
    )
    with engine.connect() as connection:
        rows = connection.execute(query, {"queues": list(queues)}).scalars().all()
    read = rows[:limit]
    return Held(frozenset(_ids(read)), len(rows) <= limit, len(read))

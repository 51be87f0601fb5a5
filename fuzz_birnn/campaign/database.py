"""Where a run's searches remember what they found: Hypothesis' own example databases.

``--database`` takes ``DIR`` (Hypothesis' :class:`~hypothesis.database.DirectoryBasedExampleDatabase`,
the default being ``REPORTS/.hypothesis``), ``none``, or ``redis://HOST:PORT[/DB]`` (Hypothesis'
:class:`~hypothesis.extra.redis.RedisExampleDatabase`, shared by every machine of a campaign).

Every search of a run is one Hypothesis test function, so the database is namespaced per search
(:class:`SearchDatabase`): the key is the search's identity (property, mode, candidate and the
strategy's arguments), never the seed, the reports folder or the machine, so a rerun anywhere
replays what that search found before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from fuzz_birnn.core.space import CaseSpace

__all__ = ["DatabaseError", "SearchDatabase", "check_database", "describe_database", "open_database", "search_key"]

_REDIS_TIMEOUT_SECONDS = 5.0


class DatabaseError(ValueError):
    """A ``--database`` that cannot be used: the message says why and what to do."""


def search_key(prop: str, mode: str, candidate: str, space: CaseSpace, isa: str | None = None) -> bytes:
    """The database namespace of one search (its instruction-set level too, where it has one: a
    search at one level must not replay, and drop, what only another level fails on)."""
    parts: list[object] = [prop, mode, candidate, space.arguments(), *([isa] if isa else [])]
    identity = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()[:24].encode()


class SearchDatabase(ExampleDatabase):
    """``database`` with every key prefixed by one search's :func:`search_key`."""

    def __init__(self, database: ExampleDatabase, prefix: bytes) -> None:
        super().__init__()
        self._database, self._prefix = database, prefix + b":"

    def save(self, key: bytes, value: bytes) -> None:
        self._database.save(self._prefix + key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self._database.fetch(self._prefix + key)

    def delete(self, key: bytes, value: bytes) -> None:
        self._database.delete(self._prefix + key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self._database.move(self._prefix + src, self._prefix + dest, value)


def open_database(spec: str | None) -> ExampleDatabase | None:
    """The database named by a checked ``spec`` (``None`` or ``"none"``: no database)."""
    if spec is None or spec == "none":
        return None
    if spec.startswith("redis://"):
        from hypothesis.extra.redis import RedisExampleDatabase

        return RedisExampleDatabase(_redis_client(spec))
    return DirectoryBasedExampleDatabase(spec)


def check_database(spec: str) -> None:
    """Refuse a spec that cannot work, before any search starts: a Redis URL that is malformed or
    unreachable, the ``redis`` package missing, a directory that cannot be created."""
    if spec == "none":
        return
    if spec.startswith("redis://"):
        client = _redis_client(spec)
        try:
            client.ping()
        except Exception as error:  # redis raises its own ConnectionError/TimeoutError family
            raise DatabaseError(f"--database {spec}: cannot reach Redis at {_address(spec)} "
                                f"({type(error).__name__}: {error})") from None
        return
    if "://" in spec:
        raise DatabaseError(f"--database {spec}: not understood; give a directory, 'none' or redis://HOST:PORT[/DB]")

    try:
        Path(spec).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatabaseError(f"--database {spec}: cannot create it ({error.strerror or error})") from None


def describe_database(spec: str | None) -> str:
    return spec if spec is not None else "none"


def _redis_client(spec: str) -> Any:
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        port = None
    database = parts.path.strip("/")
    if not parts.hostname or port is None or (database and not database.isdigit()):
        raise DatabaseError(f"--database {spec}: expected redis://HOST:PORT or redis://HOST:PORT/DB")
    try:
        import redis
    except ImportError:
        raise DatabaseError(f"--database {spec}: needs the redis package: "
                            "pip install 'fuzz-birnn[redis]'") from None
    return redis.Redis.from_url(spec, socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
                                socket_timeout=_REDIS_TIMEOUT_SECONDS)


def _address(spec: str) -> str:
    parts = urlsplit(spec)
    return f"{parts.hostname}:{parts.port}"

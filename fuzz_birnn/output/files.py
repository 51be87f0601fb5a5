"""Writing a file whole or not at all, for what a user keeps (``run.json``, JUnit XML, pages).

The text goes to a temporary file beside the target, which is renamed over it: a reader sees
the old file or the new one, never half of one, and a write that fails (a full disk, Ctrl-C)
leaves the old file as it was and no temporary file behind. Each writer gets its own temporary
name, so two processes writing the same file cannot mix their halves.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

__all__ = ["staging_folder", "write_whole"]


def write_whole(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, creating its folder; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of its own, opened exclusively; not mkstemp, whose 0600 would make a page or a run
    # record unreadable to the others who share a CI artifact (this file keeps the umask's mode)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def staging_folder(directory: Path, prefix: str) -> Path:
    """A new hidden folder in ``directory`` to build a report (or a baseline) in before it is renamed
    into place, with the mode a folder made by ``mkdir`` gets (``mkdtemp`` makes it 0700, which
    would hide the report from the others who share the folder or a CI artifact)."""
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
    staging.chmod(0o777 & ~_umask())
    return staging


def _umask() -> int:
    """The process' umask, read without changing it where the system says it (Linux)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

"""Follow a JSONL prediction log: complete new lines from a position, across log rotation.

Rotation by rename-and-create is followed by draining the renamed file (found by its inode, even
after a restart) and any rotated after it, oldest first, before the new one. Rotation by
copy-and-truncate is seen as the file no longer starting with the bytes it started with (or
shrinking below the position), and reading starts again at 0. The position (inode, offset,
first bytes) is the checkpoint: `follow` hands it to the agent with the records it read, to be
stored in the same transaction, so after a crash every line is read exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aims_agent.collectors.push import Decoded, decode_records, rename_fields
from aims_agent.config import LogTailConfig
from aims_agent.errors import StorageError
from aims_agent.schema import ModelSchema

log = logging.getLogger(__name__)

MAX_CHUNK = 4 * 1024 * 1024


HEAD = 64  # bytes of a file's start that identify it across copy-and-truncate


@dataclass(frozen=True, slots=True)
class Position:
    inode: int
    offset: int
    head: bytes = b""  # the file's first bytes when it was read


_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")


def _siblings(path: Path) -> list[Path]:
    """The log and its rotated copies (`pred.log.1`, `pred.log-20261123`), not compressed ones."""
    try:
        found = list(path.parent.glob(path.name + "*"))
    except OSError:
        return []
    return [p for p in found if not p.name.endswith(_COMPRESSED) and p.is_file()]


def _find_inode(path: Path, inode: int) -> Path | None:
    """A rotated sibling that is the file we were reading."""
    return next((p for p in _siblings(path) if p.stat().st_ino == inode), None)


def _successors(path: Path, after: os.stat_result) -> list[Path]:
    """Files rotated after the one `after` describes, oldest first, ending with `path`."""
    later = [
        (p.stat().st_mtime_ns, p)
        for p in _siblings(path)
        if p != path
        and p.stat().st_ino != after.st_ino
        and p.stat().st_mtime_ns >= after.st_mtime_ns
    ]
    return [p for _, p in sorted(later)] + [path]


class LogTail:
    """Reads the complete lines appended to `path` since `position`."""

    def __init__(self, path: Path, position: Position | None) -> None:
        self.path = path
        self.position = position
        self._fh: BinaryIO | None = None

    def _open(self, path: Path, offset: int, head: bytes = b"") -> None:
        self.close()
        self._fh = path.open("rb")
        self._fh.seek(offset)
        self.position = Position(os.fstat(self._fh.fileno()).st_ino, offset, head)

    def _head(self) -> bytes:
        assert self._fh is not None
        return os.pread(self._fh.fileno(), HEAD, 0)

    def _rewritten(self, size: int) -> bool:
        """Truncated (and maybe refilled) since we read it: smaller, or a different start."""
        assert self.position is not None
        pos = self.position
        return size < pos.offset or (bool(pos.head) and self._head()[: len(pos.head)] != pos.head)

    def _start(self) -> None:
        try:
            current = self.path.stat().st_ino
        except FileNotFoundError:
            return
        pos = self.position
        if pos is None or pos.inode == current:
            self._open(self.path, pos.offset if pos else 0, pos.head if pos else b"")
            if pos is not None and self._rewritten(self.path.stat().st_size):
                self._open(self.path, 0)
            return
        rotated = _find_inode(self.path, pos.inode)  # rotated while we were not running
        if rotated is not None:
            self._open(rotated, pos.offset, pos.head)
        else:
            self._open(self.path, 0)

    def read(self) -> list[bytes]:
        """New complete lines (without newlines); `position` is just after the last one."""
        if self._fh is None:
            self._start()
            if self._fh is None:
                return []
        assert self.position is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:  # between a rename and the create: finish what we have
            return self._read_lines(final=False)
        lines: list[bytes] = []
        if st.st_ino != self.position.inode:  # renamed away: finish it and any rotated since
            assert self._fh is not None
            done = os.fstat(self._fh.fileno())
            lines += self._read_lines(final=True)
            for nxt in _successors(self.path, done):
                self._open(nxt, 0)
                if nxt != self.path:
                    lines += self._read_lines(final=True)
        elif self._rewritten(st.st_size):  # copied and truncated: start again
            self._open(self.path, 0)
        return lines + self._read_lines(final=False)

    def _read_lines(self, *, final: bool) -> list[bytes]:
        assert self._fh is not None and self.position is not None
        out: list[bytes] = []
        while True:
            chunk = self._fh.read(MAX_CHUNK)
            if not chunk:
                return out
            end = len(chunk) if final else chunk.rfind(b"\n") + 1
            if end == 0:  # no complete line yet: wait for the writer
                self._fh.seek(self.position.offset)
                return out
            if end < len(chunk):
                self._fh.seek(self.position.offset + end)
            out += [line for line in chunk[:end].splitlines() if line.strip()]
            head = self.position.head
            if len(head) < HEAD:
                head = self._head()
            self.position = Position(self.position.inode, self.position.offset + end, head)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> LogTail:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


async def follow(
    cfg: LogTailConfig,
    schema: ModelSchema,
    committed: Position | None,
    *,
    deliver: Callable[[Decoded, Position], Awaitable[None]],
    clock: Callable[[], float],
    model: str,
) -> None:
    """Follow the log from `committed` until cancelled. Each read is decoded and handed to
    `deliver` with the position after it, to be committed together; when `deliver` raises
    StorageError, the same lines are read again on the next poll."""
    tail = LogTail(cfg.path, committed)
    try:
        while True:
            lines = await asyncio.to_thread(tail.read)
            if lines and tail.position is not None and tail.position != committed:
                pos = tail.position
                try:
                    await deliver(_decode(lines, cfg, schema, clock(), model), pos)
                    committed = pos
                except StorageError as exc:  # read those lines again next time
                    log.warning(
                        "log tail: %s; will retry",
                        exc,
                        extra={"event": "storage_problem", "model": model},
                    )
                    tail.close()
                    tail = LogTail(cfg.path, committed)
            await asyncio.sleep(cfg.poll_seconds)
    finally:
        tail.close()


def _decode(
    lines: list[bytes], cfg: LogTailConfig, schema: ModelSchema, now: float, model: str
) -> Decoded:
    if cfg.fields:
        lines = [rename_fields(line, cfg.fields) for line in lines]
    decoded = decode_records(b"\n".join(lines), "application/x-ndjson", schema, now=now)
    if decoded.errors:
        first = decoded.errors[0]  # field and reason only: ids may be personal data
        log.warning(
            "log tail: %d malformed line(s), first: line %d field %s: %s",
            len(decoded.errors),
            first.index,
            first.field,
            first.reason,
            extra={"event": "records_rejected", "model": model},
        )
    return decoded

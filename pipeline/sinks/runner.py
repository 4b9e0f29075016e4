"""The sink runner: partitions, rolls and offsets, for every sink at once.

The sink worker reads enriched records from the partitions of one topic. The runner writes each
partition's batch to every sink (a :class:`~pipeline.sinks.base.Sink` directly, a
:class:`~pipeline.sinks.base.FileSink` through its :class:`~pipeline.sinks.staging.Staging`), and
keeps, per partition, the highest offset it has handled since that partition's files were last
finished. A part file is finished only when the committed offset of its partition is past that
offset (``committed`` is the next offset to read, per partition, as the consumer has it): so a
record redelivered after a crash can only meet the part file it is already in.

The worker calls :meth:`adopt` when partitions come to it, :meth:`write` for each batch,
:meth:`handled` for every offset it is done with (written or dead-lettered), :meth:`roll` when
:meth:`rolls_due` (after committing), :meth:`release` when partitions leave it, and :meth:`close`
at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.records import TemporaryFailure
from pipeline.sinks.base import FileSink, Sink
from pipeline.sinks.staging import Staging

log = logging.getLogger("pipeline.sink")


class SinkRunner:
    def __init__(self, sinks: list[Sink | FileSink], settings: Any):
        self.sinks = sinks
        self.names = [sink.name for sink in sinks]
        self.staged: dict[str, Staging] = {}
        try:
            for sink in sinks:
                if isinstance(sink, FileSink):
                    self.staged[sink.name] = Staging(sink, settings.roll_bytes, settings.roll_seconds,
                                                     settings.id_window)
        except BaseException:
            self._close_sinks()
            raise
        self.max_offset: dict[int, int] = {}

    def write(self, records: list[dict[str, Any]], partition: int) -> dict[str, set[str]]:
        """Write one partition's records to every sink, durably; per sink, the ids it had not
        written before. ``TemporaryFailure`` when a sink is unavailable (the batch is retried
        whole: every sink keeps each id once)."""
        new: dict[str, set[str]] = {}
        for sink in self.sinks:
            staging = self.staged.get(sink.name)
            new[sink.name] = staging.write(records, partition) if staging else sink.write(records)
        return new

    def adopt(self, partitions: set[int]) -> None:
        """Partitions come to this worker: take over the part files an earlier owner left."""
        for staging in self.staged.values():
            try:
                staging.adopt(partitions)
            except TemporaryFailure as exc:  # held by another process still: the first write opens it
                log.warning("sink: %s; the part file is taken over at the first write", exc, extra={"stage": "sink"})

    def handled(self, partition: int, offset: int) -> None:
        """The record at ``offset`` is written or dead-lettered."""
        if offset > self.max_offset.get(partition, -1):
            self.max_offset[partition] = offset

    def _committed(self, partitions: set[int], committed: dict[int, int]) -> set[int]:
        """The partitions whose every handled offset is committed."""
        return {p for p in partitions if (committed.get(p) or 0) > self.max_offset.get(p, -1)}

    def rolls_due(self) -> bool:
        return any(staging.due() for staging in self.staged.values())

    def roll(self, committed: dict[int, int]) -> list[Path]:
        """Finish the part files that are big or old enough and hold only committed records."""
        due = set().union(*(staging.due() for staging in self.staged.values()))
        ready = self._committed(due, committed)
        done: list[Path] = []
        if ready:
            for staging in self.staged.values():
                done += staging.finish(ready)
            for partition in ready:
                self.max_offset.pop(partition, None)
        return done

    def release(self, partitions: set[int], committed: dict[int, int]) -> None:
        """Partitions leave this worker: finish what is committed, leave the rest to the next owner."""
        ready = self._committed(partitions, committed)
        for staging in self.staged.values():
            try:
                staging.finish(ready & staging.partitions())
            except TemporaryFailure as exc:  # left whole for the next owner of the partitions to finish
                log.warning("sink: %s; the next owner finishes the files", exc, extra={"stage": "sink"})
            staging.release(partitions - ready)
        for partition in partitions:
            self.max_offset.pop(partition, None)

    def close(self, committed: dict[int, int] | None = None) -> None:
        """The worker stops: finish the files that hold only committed records, release the rest."""
        held = set(self.max_offset).union(*(staging.partitions() for staging in self.staged.values()))
        try:
            self.release(held, committed or {})
        finally:
            for staging in self.staged.values():
                staging.close()
            self._close_sinks()

    def _close_sinks(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - closing the others matters more
                log.warning("sink: closing %s: %r", sink.name, exc, extra={"stage": "sink"})

"""Dedup stage: exact and near-duplicate verdicts over everything the pipeline has seen.

Records are fingerprinted here (exact hash of the normalised text; MinHash over word shingles,
cut into LSH bands) and checked against one index that every dedup worker shares (Redis), in
batches, so the verdicts do not depend on how many dedup workers run or which partitions they
hold. See ``index.py`` for the steps and the storage layout.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import xxhash

from pipeline.config import DedupSettings
from pipeline.records import INVALID_EVENT, BadInput, parse_iso
from pipeline.stage_metrics import CountBy
from pipeline.stages.base import Context, Stage
from pipeline.stages.dedup.fingerprint import Fingerprinter
from pipeline.stages.dedup.index import Entry, IndexParams, open_index
from pipeline.stages.dedup.versions import VersionIndex

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def index_namespace(settings: DedupSettings) -> str:
    """Signatures made with other parameters are not comparable: they live under another key
    prefix (the namespace, then a short hash of the parameters; key names cost memory too)."""
    params = (f"dedup2:p{settings.num_perm}b{settings.bands}r{settings.band_rows}w{settings.shingle_words}"
              f"s{settings.seed}c{settings.capacity}")
    return f"{settings.namespace}:{xxhash.xxh32_hexdigest(params.encode())}"


def index_params(settings: DedupSettings) -> IndexParams:
    return IndexParams(num_perm=settings.num_perm, threshold=settings.threshold,
                       horizon_days=settings.horizon_days, capacity=settings.capacity, bands=settings.bands)


def fetch_day(record: dict[str, Any]) -> int:
    try:
        return (parse_iso(record["fetched_at"]) - _EPOCH).days
    except (KeyError, TypeError, ValueError):
        raise BadInput(INVALID_EVENT, f"record has no valid 'fetched_at': {record.get('fetched_at')!r}") from None


class DedupStage(Stage):
    name = "dedup"
    record_metrics = (CountBy("dedup_outcomes", "Dedup verdicts: unique, exact or near duplicate.", "status",
                              "dedup.status"),
                      CountBy("article_versions", "Versions of articles by URL: first, unchanged refetch, changed.",
                              "status", "version.status", missing="no_url"))

    def __init__(self, settings: DedupSettings, store: str | None = None):
        super().__init__()
        self.settings = settings
        self.fingerprinter = Fingerprinter(settings.num_perm, settings.bands, settings.band_rows,
                                           settings.shingle_words, settings.min_words, settings.seed)
        self.index = open_index(store or settings.store, index_namespace(settings), index_params(settings))
        # article versions per URL, beside the index (the same Redis, or memory)
        self.versions = VersionIndex(getattr(self.index, "client", None), settings.namespace,
                                     (settings.horizon_days or 30) * 86400)

    def entry(self, record: dict[str, Any]) -> Entry:
        return Entry(record["id"], self.fingerprinter.fingerprint(record.get("text") or ""), fetch_day(record))

    def process(self, record: dict[str, Any], ctx: Context) -> dict[str, Any]:
        result = self.process_many([record], [ctx])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def process_many(self, records: list[dict[str, Any]],
                     contexts: list[Context]) -> list[dict[str, Any] | Exception]:
        """Fingerprint every record, then check the whole batch in one index call, in order."""
        results: list[dict[str, Any] | Exception] = []
        entries, positions = [], []
        for record in records:
            try:
                entries.append(self.entry(record))
                positions.append(len(results))
                results.append(record)
            except BadInput as exc:
                results.append(exc)
        for pos, verdict in zip(positions, self.index.check_and_add_many(entries), strict=True):
            results[pos]["dedup"] = verdict
            self.stats.extra[f"dedup_{verdict['status']}"] += 1
        kept = [results[pos] for pos in positions]
        for record, version in zip(kept, self._versions(kept), strict=True):
            record["version"] = version
            if version is not None:
                self.stats.extra[f"version_{version['status']}"] += 1
        if getattr(self.index, "resets_seen", 0):
            self.stats.extra["index_resets"] = self.index.resets_seen
        return results

    def _versions(self, records: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        import redis

        from pipeline.records import TemporaryFailure

        try:
            return self.versions.version_many(records)
        except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.OutOfMemoryError,
                redis.exceptions.ReadOnlyError) as exc:
            raise TemporaryFailure(f"dedup index (versions): {exc}") from exc

    def close(self) -> None:
        self.index.close()

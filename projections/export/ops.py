"""The export service's ``/health`` and ``/metrics`` (the projector's tiny server, :mod:`projections.ops`).

/metrics, read from the running exporter at scrape time:

- ``esports_export_records_total{topic}``: events written into the dataset's files (committed or open);
- ``esports_export_files_total``: files committed (renamed or uploaded whole);
- ``esports_export_skipped_total``: undecodable records skipped;
- ``esports_export_lag_records{topic,partition}``: records on the log past what the exporter has read,
  as of its last round (the service's lag: a group-less reader has no committed offsets to show).

/health answers 200 while the dataset's storage lists (the folder, or the S3 bucket) and 503 otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from projections.export.exporter import Exporter
from projections.export.files import DatasetWriter
from projections.export.store import DatasetStore
from projections.ops import Check

__all__ = ["ExportMetrics", "checks"]


class ExportMetrics(Collector):
    """The exporter's counters and lag, as /metrics shows them."""

    def __init__(self, exporter: Exporter, writer: DatasetWriter) -> None:
        self._exporter = exporter
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        report = self._exporter.report
        records = CounterMetricFamily(
            "esports_export_records", "Events written into the dataset's files.", labels=["topic"]
        )
        for topic, count in sorted(report.events.items()):
            records.add_metric([topic], count)
        yield records
        yield CounterMetricFamily(
            "esports_export_files", "Dataset files committed.", value=self._writer.files_committed
        )
        yield CounterMetricFamily(
            "esports_export_skipped", "Undecodable records skipped.", value=report.skipped
        )
        lag = GaugeMetricFamily(
            "esports_export_lag_records",
            "Records on the log past what the exporter has read (as of its last round).",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in sorted(self._exporter.lag.items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag


def checks(store: DatasetStore) -> dict[str, Check]:
    """/health's checks: the dataset's storage answers a listing."""

    async def storage() -> None:
        await asyncio.to_thread(store.listing)

    return {"storage": storage}

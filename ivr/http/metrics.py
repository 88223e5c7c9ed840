"""/metrics: the engine in Prometheus' text format, with prometheus_client.

Its own CollectorRegistry per engine (not the process-wide default), so several engines in one test
process do not collide. Labels carry bounded values only (outcome, language, topic, queue, AGI command),
never a caller number or call id. Counters that already exist elsewhere (speech, live calls, queues)
are read at scrape time by a custom collector instead of being counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ivr.http.live import LiveCalls
from ivr.http.queues import QueuesView

# AGI turnaround: ANSWER or SET VARIABLE take a millisecond; STREAM FILE and GET DATA last as long as
# the prompt plays or the caller waits, so the buckets run to a minute.
AGI_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class EngineMetrics:
    def __init__(
        self,
        live: LiveCalls,
        queues: Callable[[], QueuesView],
        services: Any,
        agi_server: Callable[[], Any],
        gc_pacer: Callable[[], Any] = lambda: None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter(
            "ivr_calls",
            "Calls ended by this engine, by outcome, language and topic.",
            ("outcome", "language", "topic"),
            registry=self.registry,
        )
        self.agi_commands = Histogram(
            "ivr_agi_command_duration_seconds",
            "Time from sending an AGI command to Asterisk's reply, by command.",
            ("command",),
            buckets=AGI_BUCKETS,
            registry=self.registry,
        )
        self._by_command: dict[str, Any] = {}
        self.registry.register(_Live(live, queues, services, agi_server, gc_pacer))
        ProcessCollector(registry=self.registry)
        live.on_end.append(self._ended)

    def _ended(self, outcome: str, language: str, topic: str) -> None:
        self.calls.labels(outcome, language or "none", topic or "none").inc()

    def observe_agi(self, command: str, seconds: float) -> None:
        """The AGI server's observer hook: on every reply, so one dict lookup and one observe."""
        child = self._by_command.get(command)
        if child is None:
            child = self._by_command[command] = self.agi_commands.labels(command)
        child.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Live(Collector):
    """Figures read at scrape time from the parts that keep them."""

    def __init__(
        self,
        live: LiveCalls,
        queues: Callable[[], QueuesView],
        services: Any,
        agi_server: Callable[[], Any],
        gc_pacer: Callable[[], Any],
    ) -> None:
        self._live = live
        self._queues = queues
        self._services = services
        self._agi_server = agi_server
        self._gc_pacer = gc_pacer

    def collect(self) -> Iterator[Metric]:
        in_progress = GaugeMetricFamily(
            "ivr_calls_in_progress", "Calls in this engine's IVR now, by language.", labels=("language",)
        )
        counts = self._live.by_language()
        for language in sorted(set(counts) | {"kk", "ru"}):
            in_progress.add_metric((language or "none",), counts.get(language, 0))
        yield in_progress

        view = self._queues()
        yield GaugeMetricFamily(
            "ivr_ami_connected", "1 when this engine's AMI connection is up.", value=int(view.connected)
        )
        waiting = GaugeMetricFamily(
            "ivr_queue_callers_waiting", "Callers waiting in the queue.", labels=("queue",)
        )
        longest = GaugeMetricFamily(
            "ivr_queue_longest_wait_seconds", "Longest current wait in the queue.", labels=("queue",)
        )
        logged_in = GaugeMetricFamily(
            "ivr_queue_members_logged_in", "Operators logged in to the queue.", labels=("queue",)
        )
        available = GaugeMetricFamily(
            "ivr_queue_members_available", "Operators free to take a call.", labels=("queue",)
        )
        for queue in view.queues:
            waiting.add_metric((queue.name,), queue.waiting)
            longest.add_metric((queue.name,), queue.longest_wait)
            logged_in.add_metric((queue.name,), queue.logged_in)
            available.add_metric((queue.name,), queue.available)
        yield from (waiting, longest, logged_in, available)

        state = self._services.state
        if state is not None:
            yield GaugeMetricFamily(
                "ivr_journal_backlog_writes",
                "Journal writes queued and not yet committed (held ones too, while the database is away).",
                value=state.pending_writes,
            )
            yield GaugeMetricFamily(
                "ivr_journal_held_rows",
                "Journal rows held in memory because the database does not answer.",
                value=state.held_rows,
            )
            yield CounterMetricFamily(
                "ivr_journal_dropped_rows",
                "Journal rows dropped while held, over journal_hold_rows.",
                value=state.dropped_rows,
            )
        server = self._agi_server()
        if server is not None:
            yield GaugeMetricFamily(
                "ivr_agi_connections_active", "FastAGI calls being handled.", value=server.active_calls
            )
        yield from _speech(self._services.speech)
        yield from _gc(self._gc_pacer())


def _gc(pacer: Any) -> Iterator[Metric]:
    """The paced collector's stops (ivr.engine.gc_pacing): what a latency spike may be."""
    if pacer is None:
        return
    pauses = pacer.pauses
    collections = CounterMetricFamily(
        "ivr_gc_collections", "Garbage collections the engine ran, by kind.", labels=("kind",)
    )
    stopped = CounterMetricFamily(
        "ivr_gc_pause_seconds", "Time the engine stood still collecting garbage, by kind.", labels=("kind",)
    )
    longest = GaugeMetricFamily(
        "ivr_gc_pause_longest_seconds", "The longest single collection so far, by kind.", labels=("kind",)
    )
    # One kind today (ivr.engine.gc_pacing runs no young collections); the label keeps dashboards
    # and alerts written against `kind="full"` valid if that changes.
    collections.add_metric(("full",), pauses.full_count)
    stopped.add_metric(("full",), pauses.full_seconds)
    longest.add_metric(("full",), pauses.full_longest)
    yield from (collections, stopped, longest)


def _speech(speech: Any) -> Iterator[Metric]:
    if speech is None:
        return
    decodes = CounterMetricFamily(
        "ivr_speech_decodes", "Speech recognitions asked for, by result.", labels=("result",)
    )
    stats = speech.stats
    for result, value in (
        ("decoded", stats.decoded),
        ("rejected_overload", stats.rejected_overload),
        ("unavailable", stats.unavailable),
        ("failed", stats.failed),
    ):
        decodes.add_metric((result,), value)
    yield decodes
    capacity = speech.workers + speech.max_pending
    yield GaugeMetricFamily(
        "ivr_speech_decodes_in_flight",
        "Recognitions decoding or waiting for a worker.",
        value=speech.in_flight,
    )
    yield GaugeMetricFamily(
        "ivr_speech_pool_saturation_ratio",
        "In-flight recognitions over what the pool accepts; at 1 callers are asked to press a key.",
        value=speech.in_flight / capacity if capacity else 0.0,
    )

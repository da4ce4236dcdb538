"""The agent's Prometheus series, on its own registry so several agents can share a process.

Every layer counts into these series; `exporters.prometheus` publishes judged check runs into
them and `/metrics` renders the registry.

Label cardinality is bounded by the config: models, checks, schema columns, verdicts and a fixed
set of reject reasons. Record ids never become labels.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
)

from aims_agent import __version__

RejectReason = Literal["invalid_record", "invalid_payload", "too_large", "backpressure"]
VERDICTS = ("pass", "warn", "breach", "insufficient_data", "error")


class Metrics:
    """The agent's metrics; exporters and the app update them, `/metrics` renders `registry`."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)  # process_start_time_seconds, memory, CPU, open fds
        Info("aims_agent", "aims-agent build information", registry=r).info(
            {"version": __version__}
        )
        self.received = Counter(
            "aims_records_received", "Records accepted by ingest", ["model"], registry=r
        )
        self.rejected = Counter(
            "aims_records_rejected",
            "Records or requests refused, by reason",
            ["model", "reason"],
            registry=r,
        )
        self.sampled = Counter(
            "aims_records_sampled",
            "Records placed into the window's reservoir sample",
            ["model"],
            registry=r,
        )
        self.window_seen = Gauge(
            "aims_window_seen_records", "Records seen in the current window", ["model"], registry=r
        )
        self.window_sampled = Gauge(
            "aims_window_sampled_records",
            "Records held in the current window's sample",
            ["model"],
            registry=r,
        )
        self.window_start = Gauge(
            "aims_window_start_timestamp_seconds",
            "Start of the current window",
            ["model"],
            registry=r,
        )
        self.value = Gauge(
            "aims_check_value",
            "Latest value of a check's metric (feature empty for the dataset)",
            ["model", "check", "metric", "feature"],
            registry=r,
        )
        self.threshold = Gauge(
            "aims_check_threshold",
            "Breach threshold of a check's metric",
            ["model", "check", "metric", "feature"],
            registry=r,
        )
        self.breached = Gauge(
            "aims_check_breached",
            "1 while a check's metric is beyond its breach threshold",
            ["model", "check", "metric", "feature"],
            registry=r,
        )
        self.verdict = Enum(
            "aims_check_verdict",
            "Verdict of a check's latest run",
            ["model", "check"],
            states=list(VERDICTS),
            registry=r,
        )
        self.runs = Counter(
            "aims_check_runs",
            "Scheduled and requested check runs by outcome: pass, warn, breach, "
            "insufficient_data, error, not_run (skipped or missed); `verdict` repeats it",
            ["model", "check", "verdict", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "aims_check_duration_seconds",
            "Wall time of a check run",
            ["model", "check"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.last_success = Gauge(
            "aims_check_last_success_timestamp_seconds",
            "End time of the latest successful run",
            ["model", "check"],
            registry=r,
        )
        self.ledger_head_info = Gauge(
            "aims_ledger_head_info",
            "1 for the evidence ledger's latest signed head: its seq, SHA-256, signing time, "
            "Ed25519 public key and signature (Prometheus keeps the history outside the store)",
            ["seq", "sha256", "signed_at", "public_key", "signature"],
            registry=r,
        )
        self.ledger_head_seq = Gauge(
            "aims_ledger_head_seq", "seq of the evidence ledger's latest signed head", registry=r
        )
        self.check_info = Gauge(
            "aims_check_info",
            "1 for each configured check: its kind and the severity of its nonconformities "
            "(join on model and check to select checks by kind)",
            ["model", "check", "kind", "severity"],
            registry=r,
        )
        self.schedule = Gauge(
            "aims_check_schedule_seconds",
            "Configured interval between runs of each check (alert when a check has not "
            "succeeded within twice this)",
            ["model", "check"],
            registry=r,
        )
        self.labels = Counter(
            "aims_labels",
            "Late labels by outcome: joined, unknown (not sampled), expired (TTL)",
            ["model", "outcome"],
            registry=r,
        )
        self.feedback = Counter(
            "aims_feedback",
            "Human-review feedback by outcome: joined, unknown (not sampled), expired (TTL)",
            ["model", "outcome"],
            registry=r,
        )
        self.kserve_events = Counter(
            "aims_kserve_events",
            "Payload logger events (KServe, Seldon, ModelMesh partials) by outcome: waiting, "
            "paired, dropped (no pair in time, or no room), undecodable, time_clamped (a "
            "paired event's time too far from the agent's clock)",
            ["model", "outcome"],
            registry=r,
        )
        self.kserve_pending = Gauge(
            "aims_kserve_pending_halves",
            "Payload logger events waiting for their other half",
            ["model"],
            registry=r,
        )
        self.kserve_pending_bytes = Gauge(
            "aims_kserve_pending_bytes",
            "Bytes of payload logger events waiting for their other half",
            ["model"],
            registry=r,
        )
        self.proxy_requests = Counter(
            "aims_proxy_requests",
            "Requests through the proxy tap by outcome: forwarded, upstream_unreachable (502), "
            "upstream_timeout (504), upstream_broken (failed mid-response), too_large (413), "
            "client_gone (the client left mid-request: not forwarded)",
            ["model", "outcome"],
            registry=r,
        )
        self.proxy_samples = Counter(
            "aims_proxy_samples",
            "Exchanges seen by the proxy taps (HTTP and gRPC) by what became of them: decoded, "
            "not_sampled, not_inference, not_2xx (HTTP) / not_ok (gRPC status), undecodable, "
            "dropped (queue full, backpressure or storage error: the response was served, the "
            "sample lost), unknown_model (a shared tap's call naming no configured model; "
            "model label empty)",
            ["model", "outcome"],
            registry=r,
        )
        self.proxy_upstream = Histogram(
            "aims_proxy_upstream_seconds",
            "Time from forwarding a request to the upstream's response headers",
            ["model"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.grpc_calls = Counter(
            "aims_grpc_proxy_calls",
            "Calls through the gRPC tap by method and the status code returned to the client "
            "(the upstream's, or UNAVAILABLE / DEADLINE_EXCEEDED when it cannot answer; "
            "CANCELLED: the client left)",
            ["model", "method", "code"],
            registry=r,
        )
        self.grpc_upstream = Histogram(
            "aims_grpc_proxy_upstream_seconds",
            "Time from forwarding a gRPC call to the upstream's answer",
            ["model"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.nc_overdue = Gauge(
            "aims_nonconformities_overdue",
            "Nonconformity records whose corrective action is past its due date and not done",
            ["model"],
            registry=r,
        )
        self.notifications = Counter(
            "aims_notifications",
            "Notification attempts by receiver and outcome: delivered, retried (receiver down or "
            "5xx: sent again after a backoff), refused (4xx: logged, not sent again)",
            ["target", "outcome"],
            registry=r,
        )
        self.notifications_pending = Gauge(
            "aims_notifications_pending",
            "Governance events not yet delivered to a receiver",
            ["target"],
            registry=r,
        )
        self.nc_open = Gauge(
            "aims_nonconformities_open",
            "Nonconformity records open, by model",
            ["model"],
            registry=r,
        )

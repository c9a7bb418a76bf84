"""DNS query rate from counters (bind9 statistics channel or CloudWatch), as a rate between
this tick's sample and the previous one persisted in the state store.

Why: each EC2 network interface may send at most 1024 packets/s to the VPC DNS resolver (and
other link-local services); above that, packets are dropped silently and name resolution fails
at random. A local caching bind with a statistics channel shows the client query rate; the
CloudWatch agent's ``ethtool_linklocal_allowance_exceeded`` shows the drops themselves.

The previous sample comes from the state store, never from warm-container memory (a tick may
run in a fresh container). Details of the rate arithmetic: :mod:`checks.dns_rate`; of the
counters: :mod:`checks.dns_bindstats`, :mod:`checks.dns_cwcounter`.
"""

from __future__ import annotations

import builtins
import time
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.base import Check, CheckConfig, CheckContext, CheckResult, ErrorKind, Status
from checks.dns_rate import Delta, Sample, compare
from monitor.core.aws import error_code
from monitor.core.errors import ConnectionPolicyError, StateError


class BindStatsSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["bind_stats"]
    url: str = Field(pattern=r"^https?://", max_length=2048)
    format: Literal["xml", "json"] = "xml"


class CloudWatchSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["cloudwatch"]
    namespace: str = Field(min_length=1, max_length=255)  # CloudWatch's own limits
    metric: str = Field(min_length=1, max_length=255)
    dimensions: dict[str, str] = Field(default_factory=dict, max_length=30)
    statistic: Literal["Sum", "Maximum", "Average"] = "Sum"
    # drops: any increase is CRITICAL (e.g. ethtool_linklocal_allowance_exceeded); queries: a rate
    mode: Literal["drops", "queries"] = "drops"
    # delta: each datapoint counts its own period (summed); cumulative: a raw ever-growing counter.
    counter: Literal["delta", "cumulative"] = "delta"
    # Window on the first run (or after a gap), and how late datapoints may arrive.
    lookback_s: int = Field(default=600, ge=60, le=86400)
    delay_s: int = Field(default=60, ge=0, le=3600)


Source = Annotated[BindStatsSource | CloudWatchSource, Field(discriminator="kind")]


class DnsQueryRateConfig(CheckConfig):
    type: Literal["dns_query_rate"]
    source: Source
    warn_per_s: float = Field(default=700, gt=0, le=1_000_000)
    # The VPC resolver drops packets above 1024/s per network interface.
    critical_per_s: float = Field(default=900, gt=0, le=1_000_000)
    # A previous sample older than this is not used (3 × a 10-minute tick): new baseline.
    max_sample_age_s: float = Field(default=1800, gt=0, le=86400)

    @model_validator(mode="after")
    def _ordered(self) -> DnsQueryRateConfig:
        if self.warn_per_s > self.critical_per_s:
            raise ValueError("warn_per_s: must be <= critical_per_s")
        return self


class _Unmeasured(Exception):
    def __init__(self, kind: ErrorKind, message: str, **observed: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.observed = observed


class DnsQueryRateCheck(Check):
    type: ClassVar[str] = "dns_query_rate"
    config_model: ClassVar[builtins.type[CheckConfig]] = DnsQueryRateConfig
    # Only the CloudWatch source calls AWS; the bind source reads its HTTP statistics channel.
    permissions: ClassVar[tuple[str, ...]] = ("cloudwatch:GetMetricStatistics",)

    @property
    def cfg(self) -> DnsQueryRateConfig:
        assert isinstance(self.config, DnsQueryRateConfig)
        return self.config

    def run(self, ctx: CheckContext) -> CheckResult:
        started = time.monotonic()
        source = self.cfg.source
        observed: dict[str, Any] = {"source": source.kind, "queries_per_s": None}
        cur: Sample | None
        try:
            prev = self._previous(ctx)
            if isinstance(source, BindStatsSource):
                cur, delta = self._bind_sample(ctx, source, prev, observed)
            else:
                cur, delta = self._cloudwatch_sample(ctx, source, prev, observed)
        except _Unmeasured as exc:
            observed.update(exc.observed)
            return self.result(Status.UNKNOWN, str(exc), observed=observed, error_kind=exc.kind,
                               latency_ms=(time.monotonic() - started) * 1000)
        status, summary = self._judge(delta, source, observed)
        summary += self._save(ctx, cur, observed)
        return self.result(status, summary, observed=observed, latency_ms=(time.monotonic() - started) * 1000)

    # ------------------------------------------------------------------ samples
    def _fingerprint(self) -> str:
        s = self.cfg.source
        if isinstance(s, BindStatsSource):
            return f"bind:{s.format}:{s.url}"
        dims = ",".join(f"{k}={v}" for k, v in sorted(s.dimensions.items()))
        return f"cw:{s.counter}:{s.namespace}/{s.metric}[{dims}]:{s.statistic}"

    def _previous(self, ctx: CheckContext) -> Sample | None:
        try:
            item = ctx.store.get_sample(ctx.target, self.name)
        except StateError as exc:
            raise _Unmeasured(ErrorKind.STATE, f"previous sample unreadable: {exc}") from exc
        return Sample.from_dict(item) if item else None

    def _save(self, ctx: CheckContext, sample: Sample | None, observed: dict[str, Any]) -> str:
        """Persist this tick's sample; a failed write costs one rate, so it is noted, not fatal."""
        if sample is None:
            return ""
        try:
            ctx.store.put_sample(ctx.target, self.name, sample.to_dict(), lease=ctx.facts.get("lease"))
        except StateError as exc:
            observed["sample_saved"] = False
            return f" (sample not saved: {exc})"
        return ""

    def _bind_sample(self, ctx: CheckContext, source: BindStatsSource, prev: Sample | None,
                     observed: dict[str, Any]) -> tuple[Sample, Delta]:
        from checks import dns_bindstats

        timeout = min(self.cfg.timeout_s, ctx.deadline.remaining())
        if timeout <= 0:
            raise _Unmeasured(ErrorKind.TIMEOUT, "no time left to read the statistics channel")
        try:
            counter = dns_bindstats.fetch(source.url, source.format, ctx.resolver, timeout)
        except ConnectionPolicyError as exc:
            raise _Unmeasured(ErrorKind.CONFIG, str(exc)) from exc
        except dns_bindstats.BindStatsError as exc:
            raise _Unmeasured(ErrorKind(exc.kind), f"bind statistics unreadable: {exc}") from exc
        cur = Sample(ctx.clock.now(), float(counter.queries), counter.boot_time, self._fingerprint())
        observed.update(counter=counter.queries, boot_time=counter.boot_time, bind_version=counter.version)
        return cur, compare(prev, cur, max_age_s=self.cfg.max_sample_age_s)

    def _cloudwatch_sample(self, ctx: CheckContext, source: CloudWatchSource, prev: Sample | None,
                           observed: dict[str, Any]) -> tuple[Sample | None, Delta]:
        from checks import dns_cwcounter as cw

        observed.update(namespace=source.namespace, metric=source.metric, mode=source.mode, counter_kind=source.counter)
        now = ctx.clock.now()
        fingerprint = self._fingerprint()
        window, continued = cw.delta_window(prev, fingerprint, now, delay_s=source.delay_s,
                                            lookback_s=source.lookback_s, max_age_s=self.cfg.max_sample_age_s)
        try:
            if source.counter == "cumulative":
                value, at = cw.latest_value(ctx, source, now, source.lookback_s)
            else:
                total, points = cw.sum_in_window(ctx, source, window)
        except cw.NoDatapoints as exc:
            raise _Unmeasured(ErrorKind.API, f"{exc}: nothing measured (agent stopped? wrong dimensions?)") from exc
        except Exception as exc:
            code = error_code(exc)
            raise _Unmeasured(ErrorKind.API, f"cloudwatch GetMetricStatistics failed: {code}: {str(exc)[:200]}",
                              error_code=code) from exc
        if source.counter == "cumulative":
            observed.update(counter=value, datapoint_at=at.isoformat())
            if prev is not None and prev.source == fingerprint and at == prev.at:
                raise _Unmeasured(ErrorKind.API, "no new CloudWatch datapoint since the previous sample")
            cur = Sample(at, value, None, fingerprint)
            return cur, compare(prev, cur, max_age_s=self.cfg.max_sample_age_s)
        observed.update(window_start=window.start.isoformat(), window_end=window.end.isoformat(),
                        datapoints=points, window_continues_previous=continued)
        # The sample records where this window ended: the next one starts there.
        return Sample(window.end, total, None, fingerprint), Delta("rate", "rate", increase=total, elapsed_s=window.seconds)

    # ------------------------------------------------------------------ verdict
    def _judge(self, delta: Delta, source: BindStatsSource | CloudWatchSource, observed: dict[str, Any]) -> tuple[Status, str]:
        observed.update(delta=delta.kind, elapsed_s=delta.elapsed_s, increase=delta.increase)
        rate = delta.per_s
        if rate is None:
            return Status.OK, delta.reason
        window = f"over {delta.elapsed_s:.0f} s"
        if isinstance(source, CloudWatchSource) and source.mode == "drops":
            observed["drops_per_s"] = round(rate, 3)
            if (delta.increase or 0) > 0:
                return (Status.CRITICAL, f"{delta.increase:g} packets dropped at the link-local 1024 pps limit {window} "
                                         f"({rate:.2f}/s): DNS lookups are failing; cache DNS locally")
            return Status.OK, f"no packets dropped at the link-local limit {window}"
        observed.update(queries_per_s=round(rate, 3), warn_per_s=self.cfg.warn_per_s, critical_per_s=self.cfg.critical_per_s)
        text = f"{rate:.1f} DNS queries/s {window}"
        if rate >= self.cfg.critical_per_s:
            return Status.CRITICAL, f"{text} (critical at {self.cfg.critical_per_s:g}/s; the VPC resolver drops above 1024 pps)"
        if rate >= self.cfg.warn_per_s:
            return Status.WARNING, f"{text} (warning at {self.cfg.warn_per_s:g}/s)"
        return Status.OK, text

"""The fault contract: what an AWS answer that is not a plain success means to the caller.

Why one place: on a bad day AWS answers late (eventual consistency), throttles, fails with a
5xx or does not answer at all. Each of these needs a different reaction, and a reaction taken
for the wrong kind turns one bad answer into an outage (a throttled KMS Decrypt escalating an
incident; SSM's documented "not visible yet" relaunching a cluster). Every AWS error is
classified here, once, into a :class:`Fault`:

- ``TRANSIENT``: throttling, 5xx, timeouts, connection errors. Retrying later helps. The
  list of codes is botocore's own (``botocore.retries.standard``'s checkers, applied to the
  error without retrying it), plus the service-specific codes botocore does not list (KMS
  ``KMSInternalException``/``DependencyTimeoutException``, SNS ``InternalError``/``KMSThrottling``,
  DynamoDB transaction cancellations whose every reason is transient).
- ``NOT_VISIBLE``: the thing just created is not visible yet. Only a call site knows that an
  error means this (SSM ``InvocationDoesNotExist`` right after SendCommand; EMR's
  ``InvalidRequestException`` for the id RunJobFlow just returned), so a site declares its
  codes (``recover.facades.needs(..., not_visible=...)``) and passes them to :func:`classify`.
- ``FINAL``: a person must act (AccessDenied, validation, KMS ``DisabledException``...).

And separately :func:`unanswered`: the request may have reached AWS and taken effect (a read
timeout, a dropped connection, a 5xx): for a changing call the outcome is *unknown*, not "no".
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker, TransientRetryableChecker

from monitor.core.aws import error_code
from monitor.core.errors import SentinelError


class Fault(str, Enum):
    TRANSIENT = "transient"
    NOT_VISIBLE = "not_visible"
    FINAL = "final"


# Transient codes botocore's standard retry mode does not know (service-specific).
EXTRA_TRANSIENT = frozenset({
    "InternalServerError", "InternalServerException", "InternalFailure", "InternalError", "ServiceUnavailable",
    "ServiceUnavailableException", "ServiceFailure", "KMSInternalException", "DependencyTimeoutException",
    "KMSThrottling", "KMSThrottlingException", "RequestTimeout", "RequestTimeoutException", "ReadTimeoutError",
    "ConnectTimeoutError", "EndpointConnectionError", "ConnectionClosedError", "ReadTimeout",
})
# A request that got one of these may have reached AWS and taken effect.
UNANSWERED = frozenset({
    "RequestTimeout", "RequestTimeoutException", "ReadTimeoutError", "ConnectionClosedError", "ReadTimeout",
    "InternalServerError", "InternalServerException", "InternalFailure", "InternalError", "ServiceUnavailable",
    "ServiceUnavailableException",
})
# DynamoDB TransactionCanceledException reasons that a retry can clear.
_TRANSIENT_CANCEL = frozenset({"ThrottlingError", "TransactionConflict", "ProvisionedThroughputExceeded"})
_THROTTLED = ThrottledRetryableChecker()
_TRANSIENT = TransientRetryableChecker()


class AwsError(SentinelError):
    """An AWS call failed; ``fault`` says what that means (see the module docstring)."""

    def __init__(self, service: str, op: str, code: str, message: str, *, fault: Fault,
                 unanswered: bool = False) -> None:
        self.service, self.op, self.code, self.fault, self.unanswered = service, op, code, fault, unanswered
        super().__init__(f"{service}.{op}: {code}: {message[:300]}")

    @property
    def transient(self) -> bool:
        """Asking again later may succeed (a transient fault or a not-visible-yet answer)."""
        return self.fault is not Fault.FINAL

    @property
    def not_visible(self) -> bool:
        return self.fault is Fault.NOT_VISIBLE


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        return int(status) if isinstance(status, int) else None
    return None


class _Http:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def classify(exc: BaseException, *, not_visible: frozenset[str] | set[str] | tuple[str, ...] = ()) -> Fault:
    """The :class:`Fault` of ``exc``; ``not_visible`` = the codes that mean "not visible yet"
    at this call site."""
    code = error_code(exc)
    if code in not_visible:
        return Fault.NOT_VISIBLE
    if isinstance(exc, BotoConnectionError | HTTPClientError) or code in EXTRA_TRANSIENT:
        return Fault.TRANSIENT
    response = getattr(exc, "response", None)
    status = _status(exc)
    context = RetryContext(attempt_number=1, parsed_response=response if isinstance(response, dict) else None,
                           http_response=_Http(status) if status else None,
                           caught_exception=exc if isinstance(exc, Exception) else None)
    if _THROTTLED.is_retryable(context) or _TRANSIENT.is_retryable(context):
        return Fault.TRANSIENT
    if code == "TransactionCanceledException" and _cancellations_transient(response):
        return Fault.TRANSIENT
    return Fault.FINAL


def _cancellations_transient(response: Any) -> bool:
    reasons = [str(r.get("Code")) for r in (response or {}).get("CancellationReasons") or [] if isinstance(r, dict)]
    real = [r for r in reasons if r not in ("None", "")]
    return bool(real) and all(r in _TRANSIENT_CANCEL for r in real)


def unanswered(exc: BaseException) -> bool:
    """True when the request may have taken effect although no success came back."""
    if isinstance(exc, BotoConnectionError) and type(exc).__name__ in ("EndpointConnectionError", "ConnectTimeoutError"):
        return False  # never reached AWS
    return error_code(exc) in UNANSWERED or (_status(exc) or 0) >= 500 or isinstance(exc, HTTPClientError)


def translate(exc: BaseException, service: str, op: str, *,
              not_visible: frozenset[str] | set[str] | tuple[str, ...] = ()) -> AwsError:
    """``exc`` as an :class:`AwsError` (style note 4: errors translated once, where they arise)."""
    code = error_code(exc)
    if isinstance(exc, NotImplementedError):  # moto: action not implemented
        code = "NotImplemented"
    return AwsError(service, op, code, str(exc), fault=classify(exc, not_visible=not_visible),
                    unanswered=unanswered(exc))

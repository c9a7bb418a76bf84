"""Map what the HiveServer2 driver stack raised to an error kind and a short, secret-free message.

The kind decides the verdict (DESIGN §3): ``timeout | refused | query`` mean the server is
broken (CRITICAL, a relaunch may help); ``tls | auth | config`` mean a person must look
(UNKNOWN). The phase the attempt was in disambiguates what the exception alone cannot: EOF
during the TLS handshake or the SASL login is a mismatch of settings, EOF after login is a
server that dropped us. Except where that EOF is what a load balancer with no healthy backend
does (it completes TLS, then closes): when the check knows a load balancer is in the path, or
passed before with the same settings, that EOF is ``no_backend`` (CRITICAL).
The real cause may be nested (thrift keeps it in ``.inner``, Python
in ``__cause__`` / ``__context__``), so the whole chain is searched.
"""

from __future__ import annotations

import re
import socket
import ssl

from checks.base import ErrorKind

MAX_MESSAGE = 240
_BAD_STATUS = re.compile(r"Bad status: (\d+) \((.*)\)", re.DOTALL)


def exception_chain(exc: BaseException, limit: int = 12) -> list[BaseException]:
    """``exc`` and what it wraps (thrift ``.inner``, ``__cause__``, ``__context__``), each once."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < limit:
        cur = todo.pop(0)
        if any(cur is s for s in seen):
            continue
        seen.append(cur)
        todo += [e for e in (getattr(cur, "inner", None), cur.__cause__, cur.__context__) if isinstance(e, BaseException)]
    return seen


def _first(chain: list[BaseException], kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
    return next((e for e in chain if isinstance(e, kind)), None)


def _is_timeout(chain: list[BaseException]) -> bool:
    for e in chain:
        if isinstance(e, TimeoutError):  # socket.timeout is TimeoutError since 3.10
            return True
        if type(e).__name__ == "TTransportException" and getattr(e, "type", None) == 3:  # TIMED_OUT
            return True
    return False


def _server_error_text(exc: BaseException) -> str:
    """PyHive's OperationalError carries the whole Thrift response; keep its status message."""
    resp = exc.args[0] if exc.args else None
    status = getattr(resp, "status", None)
    text = getattr(status, "errorMessage", None)
    if text:
        state = getattr(status, "sqlState", None)
        return f"{text} (SQLState {state})" if state else str(text)
    return f"{type(exc).__name__}: {exc}"


def _scrub(text: str, secret: str | None) -> str:
    """Defence in depth: no driver is known to echo the password, but none may."""
    if secret:
        text = text.replace(secret, "****")
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def classify(exc: BaseException, phase: str, timeout_s: float, secret: str | None = None, *,
             eof_means_no_backend: bool = False) -> tuple[ErrorKind, str]:
    """``eof_means_no_backend``: a load balancer is known to be in the path, or this check
    passed before with the same settings; then a connection accepted and closed before the
    protocol answered is a missing backend (CRITICAL ``no_backend``), not a settings mismatch."""
    kind, message = _classify(exc, phase, timeout_s, eof_means_no_backend)
    return kind, _scrub(message, secret)


def _closed_early(chain: list[BaseException]) -> bool:
    """EOF or reset, not a TLS protocol error (a plain server on a TLS port answers garbage:
    that is an ``SSLError`` other than EOF and stays ``tls``)."""
    if _first(chain, (ssl.SSLCertVerificationError,)) is not None:
        return False
    if _first(chain, ssl.SSLEOFError) is not None or _first(chain, ssl.SSLZeroReturnError) is not None:
        return True
    other_ssl = _first(chain, ssl.SSLError)
    return other_ssl is None and _first(chain, ConnectionError) is not None


def _classify(exc: BaseException, phase: str, timeout_s: float, eof_means_no_backend: bool = False) -> tuple[ErrorKind, str]:
    chain = exception_chain(exc)
    if _is_timeout(chain):
        return ErrorKind.TIMEOUT, f"no answer within {timeout_s:.1f} s during {phase}"
    if eof_means_no_backend and phase in ("tls", "auth") and _closed_early(chain) \
            and _first(chain, ConnectionRefusedError) is None:
        during = "the TLS handshake" if phase == "tls" else "the SASL login, right after TLS"
        return ErrorKind.NO_BACKEND, (f"connection accepted, then closed during {during}: no healthy "
                                      "HiveServer2 behind the load balancer (or the path that worked before)")

    verify = _first(chain, ssl.SSLCertVerificationError)
    if verify is not None:
        reason = getattr(verify, "verify_message", None) or str(verify)
        return ErrorKind.TLS, f"server certificate not accepted: {reason}"
    if phase == "tls":
        ssl_err = _first(chain, ssl.SSLError)
        if ssl_err is not None and not isinstance(ssl_err, ssl.SSLEOFError):
            return ErrorKind.TLS, f"TLS handshake failed: {getattr(ssl_err, 'reason', None) or ssl_err}"
        if _first(chain, (ConnectionError, ssl.SSLEOFError)) is not None:
            return ErrorKind.TLS, "the server closed the connection during the TLS handshake (is TLS on at the server?)"

    if _first(chain, ConnectionRefusedError) is not None:
        return ErrorKind.REFUSED, "connection refused"
    gai = _first(chain, socket.gaierror)
    if gai is not None:
        return ErrorKind.DNS, f"cannot resolve the host name: {gai}"

    for e in chain:
        bad = _BAD_STATUS.search(str(e)) if type(e).__name__ == "TTransportException" else None
        if bad is not None:
            text = re.sub(r"^b'(.*)'$", r"\1", bad.group(2).strip())  # thrift-sasl formats the bytes' repr
            return ErrorKind.AUTH, f"login rejected (SASL status {bad.group(1)}: {text})"
    if phase == "auth" and _first(chain, (ConnectionError, ssl.SSLError)) is not None:
        return ErrorKind.CONFIG, ("the server closed the connection during the SASL login "
                                  "(auth or tls setting not what the server expects?)")

    if phase == "connect" and isinstance(exc, OSError):
        return ErrorKind.REFUSED, f"cannot connect: {exc.strerror or exc}"
    if _first(chain, (ConnectionError, ssl.SSLError)) is not None:
        return ErrorKind.REFUSED, f"the server closed the connection during {phase}"
    module = type(exc).__module__
    if module.startswith("pyhive"):  # the server answered with an error status
        what = "query failed" if phase == "query" else "session failed"
        return ErrorKind.QUERY, f"{what}: {_server_error_text(exc)}"
    if module.startswith(("thrift", "TCLIService")):  # TApplicationException, TProtocolException...
        return ErrorKind.QUERY, f"server error during {phase}: {type(exc).__name__}: {exc}"
    # Anything else is raised on our side (a setting the client cannot use, an incompatible
    # server): a person must look; it must never count as a broken server.
    return ErrorKind.CONFIG, f"client error during {phase}: {type(exc).__name__}: {exc}"

"""The offline demo (``sentinel sandbox``) and its parts: a HiveServer2-protocol stub server,
throwaway TLS certificates, a moto-seeded account, a load balancer stand-in. Tests reuse them."""

from __future__ import annotations


def run_sandbox(*, as_json: bool = False) -> int:
    from monitor.sandbox.demo import run_sandbox as run

    return run(as_json=as_json)

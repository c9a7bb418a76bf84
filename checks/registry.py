"""One explicit map from a config ``type`` to its check class, imported on first use.

Adding a check is one module plus one line here. Check modules keep their drivers
(pyhive, thrift, dnspython) behind function-level imports, so importing a module to read
its config model stays cheap; the driver loads only when a check of that type runs.
"""

from __future__ import annotations

import importlib
from functools import cache

from checks.base import Check, CheckConfig

REGISTRY: dict[str, str] = {
    "hiveserver2": "checks.hiveserver2:HiveServer2Check",
    "route53_health": "checks.route53_health:Route53HealthCheck",
    "dns_query_rate": "checks.dns_query_rate:DnsQueryRateCheck",
    "emr_state": "checks.emr_state:EmrStateCheck",
}


class UnknownCheckType(KeyError):
    def __init__(self, type_name: str) -> None:
        valid = ", ".join(sorted(REGISTRY))
        super().__init__(f"unknown check type {type_name!r} (valid: {valid})")
        self.message = f"unknown check type {type_name!r} (valid: {valid})"


@cache
def check_class(type_name: str) -> type[Check]:
    try:
        target = REGISTRY[type_name]
    except KeyError:
        raise UnknownCheckType(type_name) from None
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Check)):
        raise TypeError(f"{target} is not a Check")
    return cls


def config_model(type_name: str) -> type[CheckConfig]:
    return check_class(type_name).config_model


def build(config: CheckConfig) -> Check:
    type_name = str(config.type)
    return check_class(type_name)(config)


def all_permissions() -> dict[str, tuple[str, ...]]:
    """IAM actions per check type (for the IAM policy generator and its audit test)."""
    return {name: check_class(name).permissions for name in sorted(REGISTRY)}

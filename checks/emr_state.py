"""EMR cluster state: is the target's cluster alive, and what did its steps do."""

from __future__ import annotations

from typing import ClassVar, Literal

from checks.base import Check, CheckConfig, CheckContext, CheckResult


class EmrStateConfig(CheckConfig):
    type: Literal["emr_state"]


class EmrStateCheck(Check):
    type: ClassVar[str] = "emr_state"
    config_model: ClassVar[type[CheckConfig]] = EmrStateConfig
    permissions: ClassVar[tuple[str, ...]] = (
        "elasticmapreduce:ListClusters",
        "elasticmapreduce:DescribeCluster",
        "elasticmapreduce:ListSteps",
        "elasticmapreduce:ListInstances",
    )

    def run(self, ctx: CheckContext) -> CheckResult:
        raise NotImplementedError("emr_state check: not implemented yet")

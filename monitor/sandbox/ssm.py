"""SSM Run Command as the sandbox's world answers it (the sandbox and the dependency-fault
tests): moto says Success at once; production does not.
"""

from __future__ import annotations

from typing import Any


class RealisticSsm:
    """SSM Run Command as it answers in production (moto says Success at once): right after
    SendCommand, GetCommandInvocation answers ``InvocationDoesNotExist`` (documented eventual
    consistency), then ``InProgress`` while the command runs, then its real status. The
    restart rung must wait through both, never take them for a failure."""

    def __init__(self, invisible_polls: int = 1, running_polls: int = 1) -> None:
        self.plan = (invisible_polls, running_polls)
        self.left = [0, 0]

    def register(self, client: Any) -> None:
        client.meta.events.register("after-call", self._after)
        client.meta.events.register("before-call", self._before)

    def unregister(self, client: Any) -> None:
        client.meta.events.unregister("after-call", self._after)
        client.meta.events.unregister("before-call", self._before)

    def _before(self, model: Any, **_: Any) -> Any:
        if model.name != "GetCommandInvocation" or self.left[0] <= 0:
            return None
        from botocore.awsrequest import AWSResponse

        self.left[0] -= 1
        return (AWSResponse("https://ssm.sandbox.invalid", 400, {}, None),
                {"Error": {"Code": "InvocationDoesNotExist", "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": 400}})

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "SendCommand":
            self.left = list(self.plan)
        elif model.name == "GetCommandInvocation" and self.left[1] > 0:
            self.left[1] -= 1
            parsed["Status"] = "InProgress"

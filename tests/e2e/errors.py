"""The one exception of the e2e support code, so every failure names the component that broke."""

from __future__ import annotations

from pathlib import Path

from tools.testing.processes import tail as read_tail


class DataPlaneError(AssertionError):
    """A component of the data plane failed; the message starts with ``"<component>: "``."""

    def __init__(self, component: str, message: str, log: Path | None = None, tail: str | None = None):
        self.component = component
        text = f"{component}: {message}"
        if log is not None:
            text += f"\n--- last lines of {log} ---\n{tail if tail is not None else read_tail(log)}"
        super().__init__(text)

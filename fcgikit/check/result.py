"""What ``fcgikit check`` found, and how it prints it.

A :class:`Problem` is one thing that is wrong, worded so the user can fix it: a title and the
lines that say why and what to do. :class:`CheckResult` gathers them with the app's answer;
:func:`report` prints the answer, what the app wrote, the warnings and the problems.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import TextIO

    from fcgikit.client import FastCGIResponse

#: How much of the body ``check`` prints.
BODY_PREVIEW = 800


class Problem:
    """One thing that is wrong, said the way the user can fix it."""

    def __init__(self, title: str, *details: str) -> None:
        self.title = title
        self.details = list(details)

    def render(self) -> str:
        lines = [f"  * {self.title}"]
        lines += [f"      {line}" for detail in self.details for line in detail.splitlines()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Problem({self.title!r})"


class CheckResult:
    """What ``check`` found: the response if there was one, and the problems."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.problems: list[Problem] = []
        #: What looks wrong to a visitor but does not fail the check.
        self.warnings: list[Problem] = []
        self.stderr = ""
        self.events: list[dict[str, Any]] = []

    @property
    def ok(self) -> bool:
        """The app answered the request with neither a problem nor a 4xx/5xx status."""
        return not self.problems and self.status is not None and self.status < 400


def report(
    result: CheckResult,
    out: TextIO,
    target: str,
    *,
    response: FastCGIResponse | None = None,
    stdout: str = "",
) -> None:
    """Print the app's answer (``response``, if it gave one), what it wrote to stderr and
    stdout that a web server would log, then the warnings and the problems, then the verdict."""
    if response is not None:
        print(f"\nStatus: {response.status} {response.reason}", file=out)
        for name, value in response.headers:
            print(f"{name}: {value}", file=out)
        body = response.body[:BODY_PREVIEW].decode("utf-8", "replace")
        more = len(response.body) - BODY_PREVIEW
        print(f"\n{body}" + (f"\n... ({more} more bytes)" if more > 0 else ""), file=out)
    noise = re.compile(r"^fcgikit\[\d+\] INFO ")
    if any(line.strip() and not noise.match(line) for line in result.stderr.splitlines()) or (
        result.problems and result.stderr.strip()
    ):
        print("\n--- the app's stderr", file=out)
        print(result.stderr.rstrip(), file=out)
    if stdout.strip():
        print("\n--- the app's stdout (a web server logs it, or loses it)", file=out)
        print(stdout.rstrip(), file=out)
    if result.warnings:
        print("\nWarnings:", file=out)
        for warning in result.warnings:
            print(warning.render(), file=out)
    if result.problems:
        print("\nProblems:", file=out)
        for problem in result.problems:
            print(problem.render(), file=out)
        print(f"\nFAILED: {target}", file=out)
    elif result.ok:
        print(f"\nOK: {target} answers like a web server's FastCGI app should", file=out)

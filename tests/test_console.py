"""How the CLI shows progress: bars on a terminal, plain lines in a log (nohup, CI)."""

from __future__ import annotations

import io

from rich.console import Console

from dnerv_codec.console import LOG_EVERY_S, RichReporter


def test_without_a_terminal_progress_is_a_plain_line_every_few_seconds():
    now = [0.0]
    log = io.StringIO()
    reporter = RichReporter(out=Console(file=log, force_terminal=False, width=200), clock=lambda: now[0])
    with reporter.task("fitting", total=20) as task:
        for step in range(1, 21):
            now[0] += 3.0  # 60 s in all
            task.update(step, loss=0.5 / step)
    lines = log.getvalue().splitlines()
    assert (
        len(lines) == 60 // (4 * 3) + 1
    )  # a line each 12 s (the first update past LOG_EVERY_S), one at the end
    assert LOG_EVERY_S == 10.0
    assert lines[0].startswith("fitting 20%  loss") and lines[-1].startswith("fitting 100%  loss 0.025")
    assert "\x1b" not in log.getvalue()  # no control codes in a log file

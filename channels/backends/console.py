"""Development backend: prints the message instead of sending it, so nothing
leaves the machine until a real backend is configured."""

from __future__ import annotations

import json
import sys
import threading

from channels.backends import Backend, Outcome, Outgoing, SendResult

_print_lock = threading.Lock()


class ConsoleBackend(Backend):
    def __init__(self, *, channel: str, stream=None) -> None:
        super().__init__(channel=channel)
        self.stream = stream or sys.stdout

    def send(self, message: Outgoing) -> SendResult:
        rendered = dict(message.rendered)
        to = rendered.pop("to", "")
        lines = [
            f"--- maestra {message.channel} message {message.id} to {json.dumps(to, ensure_ascii=False)}"
        ]
        for name, value in rendered.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"{name}: {text}")
        lines.append("---")
        with _print_lock:  # two workers in one process must not interleave lines
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        return SendResult(outcome=Outcome.SENT, provider_id=f"console-{message.id}")

"""Signs that training is not learning, kept across epochs: when each held, and whether it went away.

A task's ``diagnose`` names the signs of one epoch (kind -> message with that epoch's numbers);
``LearningSigns`` says each new sign at once, says once when one has not held for ``GONE_AFTER``
epochs in a row (an imbalanced set often predicts its big class for the first epochs, then learns:
such a run must not read as failed), and keeps what ``run.json`` and ``TrainResult`` record. A sign
that comes and goes with a noisy validation split is not called gone.
"""

from __future__ import annotations

from typing import Any, Callable

GONE_AFTER = 3  # epochs in a row without a sign before it counts as gone


class LearningSigns:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self._signs: dict[str, dict[str, Any]] = {}
        self._absent: dict[str, int] = {}
        self._said_gone: set[str] = set()

    def update(self, epoch: int, found: dict[str, str]) -> None:
        for kind, message in found.items():
            if kind not in self._signs:
                self._signs[kind] = {"kind": kind, "message": message, "epochs": []}
                self.say(f"[bold yellow]not learning (epoch {epoch}):[/] {message}")
            sign = self._signs[kind]
            sign["epochs"].append(epoch)
            sign["message"] = message  # the latest numbers
            sign["gone_from"], self._absent[kind] = None, 0
        for kind, sign in self._signs.items():
            if kind in found:
                continue
            self._absent[kind] += 1
            if self._absent[kind] == GONE_AFTER:
                sign["gone_from"] = epoch - GONE_AFTER + 1
                if kind not in self._said_gone:
                    self.say(f"[green]learning (epoch {epoch}):[/] the sign '{kind}' of epochs {sign['epochs'][0]}-"
                             f"{sign['epochs'][-1]} has not held since epoch {sign['gone_from']}")
                    self._said_gone.add(kind)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps, so a resumed run still knows the signs of its earlier epochs."""
        return {"signs": [dict(sign, epochs=list(sign["epochs"])) for sign in self._signs.values()],
                "absent": dict(self._absent), "said_gone": sorted(self._said_gone)}

    def restore(self, state: dict[str, Any]) -> None:
        self._signs = {sign["kind"]: dict(sign, epochs=list(sign["epochs"])) for sign in state.get("signs", [])}
        self._absent = {kind: int(n) for kind, n in state.get("absent", {}).items()}
        self._said_gone = set(state.get("said_gone", []))

    def as_list(self) -> list[dict[str, Any]]:
        """kind, message (the latest), epochs it held, gone_from (None while it still holds)."""
        return [dict(sign) for sign in self._signs.values()]

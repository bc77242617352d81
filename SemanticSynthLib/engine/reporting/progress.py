"""Progress for long work: a bar on a terminal, JSON lines for programs (the Slicer bridge)."""
from __future__ import annotations

import json
import sys
import time


class Progress:
    """Report `stage`, step counts and an ETA. mode: "bar", "json" or "none"."""

    def __init__(self, mode: str = "bar", stream=None):
        self.mode = mode
        self.stream = stream or (sys.stdout if mode == "json" else sys.stderr)
        self._bar = None
        self._stage = None
        self._start = time.monotonic()

    def stage(self, name: str, total: int) -> None:
        self.close_bar()
        self._stage, self._total, self._start = name, max(int(total), 1), time.monotonic()
        if self.mode == "bar" and self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=self._total, desc=name, file=self.stream, leave=False)
        self.update(0)

    def update(self, done: int, **info) -> None:
        elapsed = time.monotonic() - self._start
        eta = elapsed / done * (self._total - done) if done else None
        if self.mode == "json":
            record = {"stage": self._stage, "step": int(done), "total": self._total,
                      "fraction": round(done / self._total, 4), "elapsed_s": round(elapsed, 2),
                      "eta_s": None if eta is None else round(eta, 1), **info}
            print(json.dumps(record), file=self.stream, flush=True)
        elif self._bar is not None:
            self._bar.n = done
            if info:
                self._bar.set_postfix({k: v for k, v in info.items()}, refresh=False)
            self._bar.refresh()
        elif self.mode == "bar" and (done == self._total or done == 0):
            print(f"{self._stage}: {done}/{self._total}" + (f" {info}" if info else ""), file=self.stream, flush=True)

    def message(self, text: str, **info) -> None:
        if self.mode == "json":
            print(json.dumps({"message": text, **info}), file=self.stream, flush=True)
        elif self.mode == "bar":
            self.close_bar()
            print(text, file=self.stream, flush=True)

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

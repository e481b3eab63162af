"""Progress bars and messages on stderr, with quiet (0), normal (1) and verbose (2) levels."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class Progress:
    def __init__(self, level: int = 1):
        self.level = level

    def bar(self, total: int, desc: str, unit: str = "img"):
        return tqdm(
            total=total, desc=desc, unit=unit, disable=self.level == 0, leave=self.level >= 2,
            file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
        )

    def info(self, message: str) -> None:
        if self.level >= 1:
            tqdm.write(message, file=sys.stderr)

    def debug(self, message: str) -> None:
        if self.level >= 2:
            tqdm.write(message, file=sys.stderr)


QUIET = Progress(0)

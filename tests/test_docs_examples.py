"""The Python examples in docs/api.md run as written, in order, in an empty folder."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_api_examples_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    script = tmp_path / "examples.py"
    script.write_text("\n".join(blocks))
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    assert "['resnet10t', 'regnetx_002'] cv 3 2" in out
    assert "images to review; profile small" in out and "flagged with the noise_rate rule" in out
    share = int(re.search(r"(\d+)% of them are the flipped labels", out).group(1))
    assert share >= 70, out
    assert "['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] ['resnet10t', 'regnetx_002']" in out
    assert re.search(r"\d+ skipped; \d+ candidates", out) and "undone:" in out
    assert "run/report.html" in out and re.search(r"\d+ tasks for Label Studio", out) and "serves the review page" in out
    assert (tmp_path / "run" / "review.csv").is_file() and (tmp_path / "selection" / "selection.csv").is_file()
    assert (tmp_path / "digits" / ".datacleaner" / "journal").is_dir()

"""`select` recognises pool images that are already in the committee's labeled set, from the bundle alone
(the dataset moved away), and collapses near copies inside the pool; distinct pool images stay candidates."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits


def test_leakage_and_near_copies_found_from_the_bundle_alone(tiny_config, tmp_path):
    from datacleaner import select, train
    from datacleaner.demo import write_noisy_digits

    data = tmp_path / "data"
    write_noisy_digits(data, noise=0.0, seed=0, per_class=30, classes=[0, 1, 3, 7])
    committee = tmp_path / "committee"
    train(data, committee, tiny_config)
    assert (committee / "labeled.npz").is_file()
    labeled = {c: sorted(f.name for f in (data / c).iterdir()) for c in ("0", "1", "3", "7")}

    pool = tmp_path / "pool"
    pool.mkdir()
    shutil.copy(data / "3" / labeled["3"][4], pool / "exact.png")  # the labeled file itself
    Image.open(data / "7" / labeled["7"][2]).convert("RGB").save(pool / "reencoded.jpg", quality=80)
    Image.open(data / "1" / labeled["1"][6]).resize((48, 48), Image.Resampling.BICUBIC).save(pool / "resized.png")
    d = load_digits()
    unseen = [i for i in range(len(d.target)) if d.target[i] in (0, 1, 3, 7)][-20:]  # never in the labeled set
    for i in unseen:
        Image.fromarray((d.images[i] * 15).astype(np.uint8)).resize((32, 32)).save(pool / f"new {i}.png")
    first = Image.open(pool / f"new {unseen[0]}.png").convert("RGB")
    first.save(pool / "new copy.jpg", quality=85)  # a near copy inside the pool
    moved = tmp_path / "elsewhere"
    shutil.move(data, moved)  # select works from the bundle alone

    paths = sorted(p.name for p in pool.iterdir())
    prod = pd.DataFrame({"path": paths, "label": "0", "score": 0.5})
    prod.to_csv(tmp_path / "prod.csv", index=False)
    result = select(pool, committee, tmp_path / "prod.csv", tmp_path / "run", budget=5)
    sel = pd.read_csv(tmp_path / "run" / "selection.csv", dtype=str, keep_default_na=False).set_index("path")

    for name, source in (("exact.png", f"3/{labeled['3'][4]}"), ("reencoded.jpg", f"7/{labeled['7'][2]}"),
                         ("resized.png", f"1/{labeled['1'][6]}")):
        row = sel.loc[name]
        assert row["reason"] == "already_labeled", (name, row.to_dict())
        assert source in row["detail"] and f"(label {source[0]})" in row["detail"], row["detail"]
        assert row["rank"] == "" and row["in_budget"] == ""  # never takes a budget slot
    copy = sel.loc["new copy.jpg"]
    assert copy["reason"] == "duplicate" and f"new {unseen[0]}.png" in copy["detail"]
    new = sel[sel.index.str.startswith("new ") & (sel.index != "new copy.jpg")]
    assert len(new) == 20 and (new["reason"].isin(["disagree", "low_confidence"])).all(), new["reason"].value_counts()
    assert result.summary["already_labeled"] == 3 and result.summary["duplicates"] == 1
    assert (sel["in_budget"] == "True").sum() == 5

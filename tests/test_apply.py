"""apply -> undo restores the exact tree; refusals; manifests; adding selected pool images."""

import hashlib

import pandas as pd
import pytest
from typer.testing import CliRunner

from datacleaner.cli import app
from datacleaner.demo import write_noisy_digits

runner = CliRunner()


def tree(root):
    """{relative path: sha256} of every file, the journal folder left out."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and ".datacleaner" not in p.parts
    }


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    truth = write_noisy_digits(root, noise=0.0, seed=0, per_class=5, classes=[0, 1, 7])
    return root, truth


def review_rows(root, rows):
    out = []
    for path, label in rows:
        out.append({"path": path, "given_label": path.split("/")[0], "checksum": hashlib.sha256((root / path).read_bytes()).hexdigest()[:16], "reviewed_label": label})
    return pd.DataFrame(out)


def test_apply_then_undo_restores_the_exact_tree(dataset, tmp_path):
    root, truth = dataset
    before = tree(root)
    paths = truth["path"].tolist()
    review = review_rows(root, [(paths[0], "7"), (paths[1], "__drop__"), (paths[2], ""), (paths[6], "0")])
    review.to_csv(tmp_path / "review.csv", index=False)

    dry = runner.invoke(app, ["apply", str(tmp_path / "review.csv"), "--dataset", str(root)])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and tree(root) == before

    done = runner.invoke(app, ["apply", str(tmp_path / "review.csv"), "--dataset", str(root), "--yes"])
    assert done.exit_code == 0, done.output
    after = tree(root)
    name0 = paths[0].split("/")[1]
    assert f"7/{name0}" in after and paths[0] not in after
    assert paths[1] not in after and (root / ".datacleaner" / "quarantine" / paths[1]).is_file()  # dropped, not deleted
    assert paths[2] in after
    assert sorted(after.values()) != sorted(before.values()) or len(after) != len(before)

    undone = runner.invoke(app, ["undo", "--dataset", str(root)])
    assert undone.exit_code == 0, undone.output
    assert tree(root) == before
    again = runner.invoke(app, ["undo", "--dataset", str(root)])
    assert again.exit_code == 1 and "nothing to undo" in again.output


def test_escaping_unknown_and_changed_rows_are_refused(dataset, tmp_path):
    root, truth = dataset
    (tmp_path / "outside.png").write_bytes((root / truth["path"][0]).read_bytes())
    paths = truth["path"].tolist()
    review = review_rows(root, [(paths[0], "cat"), (paths[1], "7"), (paths[3], "7")])
    review.loc[1, "checksum"] = "0" * 16  # the file changed since the review
    review = pd.concat([review, pd.DataFrame([{"path": "../outside.png", "reviewed_label": "7", "checksum": ""}])])
    review.to_csv(tmp_path / "review.csv", index=False)
    before = tree(root)
    r = runner.invoke(app, ["apply", str(tmp_path / "review.csv"), "--dataset", str(root), "--yes"])
    assert r.exit_code == 0, r.output
    assert "unknown label 'cat'" in r.output
    assert "file changed since the review" in r.output
    assert "resolves outside" in r.output
    assert "1 change(s), 3 refused" in r.output
    after = tree(root)
    assert paths[3] not in after and paths[0] in after and paths[1] in after
    assert (tmp_path / "outside.png").is_file()
    runner.invoke(app, ["undo", "--dataset", str(root)])
    assert tree(root) == before


def test_manifest_dataset_is_rewritten_and_restored(dataset, tmp_path):
    root, truth = dataset
    manifest = tmp_path / "labels.csv"
    pd.DataFrame({"path": "data/" + truth["path"], "label": truth["given_label"]}).to_csv(manifest, index=False)
    original = manifest.read_text()
    rows = [("data/" + truth["path"][0], "1"), ("data/" + truth["path"][1], "__drop__")]
    review = pd.DataFrame([{"path": p, "reviewed_label": label} for p, label in rows])
    review.to_csv(tmp_path / "review.csv", index=False)
    r = runner.invoke(app, ["apply", str(tmp_path / "review.csv"), "--dataset", str(manifest), "--yes"])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(manifest, dtype=str)
    assert table.set_index("path").loc["data/" + truth["path"][0], "label"] == "1"
    assert "data/" + truth["path"][1] not in set(table["path"])
    assert (tmp_path / ".datacleaner" / "quarantine" / "data" / truth["path"][1]).is_file()
    assert runner.invoke(app, ["undo", "--dataset", str(manifest)]).exit_code == 0
    assert manifest.read_text() == original and (root / truth["path"][1]).is_file()


def test_selected_pool_images_are_copied_in(dataset, tmp_path):
    root, _ = dataset
    pool = tmp_path / "pool"
    write_noisy_digits(pool, noise=0.0, seed=3, per_class=2, classes=[7])
    src = sorted(pool.rglob("*.png"))[0].relative_to(pool).as_posix()
    sel = pd.DataFrame([{"path": src, "production_label": "1", "suggested_label": "7", "reason": "disagree",
                         "checksum": hashlib.sha256((pool / src).read_bytes()).hexdigest()[:16], "reviewed_label": "7"}])
    sel.to_csv(tmp_path / "selection.csv", index=False)
    before = tree(root)
    r = runner.invoke(app, ["apply", str(tmp_path / "selection.csv"), "--dataset", str(root), "--pool", str(pool), "--yes"])
    assert r.exit_code == 0, r.output
    added = set(tree(root)) - set(before)
    assert len(added) == 1 and next(iter(added)).startswith("7/")
    assert (pool / src).is_file()  # the pool keeps its image
    runner.invoke(app, ["undo", "--dataset", str(root)])
    assert tree(root) == before


def test_absolute_paths_inside_the_dataset_are_applied_and_outside_refused(dataset, tmp_path):
    root, truth = dataset
    before = tree(root)
    paths = truth["path"].tolist()
    (tmp_path / "outside.png").write_bytes((root / paths[0]).read_bytes())
    review = review_rows(root, [(paths[0], "7"), (paths[1], "__drop__")])
    review["path"] = [str((root / p).resolve()) for p in review["path"]]  # absolute, as a user may paste them
    review.loc[1, "path"] = str(root / "1" / ".." / paths[1])  # absolute with '..' that stays inside
    outside = {"path": str(tmp_path / "outside.png"), "given_label": "0", "checksum": "", "reviewed_label": "1"}
    pd.concat([review, pd.DataFrame([outside])]).to_csv(tmp_path / "review.csv", index=False)
    r = runner.invoke(app, ["apply", str(tmp_path / "review.csv"), "--dataset", str(root), "--yes"])
    assert r.exit_code == 0, r.output
    assert "2 change(s), 1 refused" in r.output and "absolute path outside" in r.output
    after = tree(root)
    assert f"7/{paths[0].split('/')[1]}" in after and paths[0] not in after and paths[1] not in after
    assert (tmp_path / "outside.png").is_file()
    assert runner.invoke(app, ["undo", "--dataset", str(root)]).exit_code == 0
    assert tree(root) == before

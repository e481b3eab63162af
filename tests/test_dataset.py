"""Input discovery and validation on real (digit-scan) images in every awkward form."""

import io

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from datacleaner.dataset import check_class_sizes, decode_images, find_labeled_images, load_rgb
from datacleaner.errors import DataCleanerError

DIGITS = load_digits()


def scan(i, size=24):
    return Image.fromarray((DIGITS.images[i] * 15).astype(np.uint8), mode="L").resize((size, size))


def make_tree(root, per_class=4):
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for j in range(per_class):
            scan(j).convert("RGB").save(root / c / f"{j}.png")


def test_folder_discovery_is_recursive_case_insensitive_and_unicode(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "dog" / "nested dir").mkdir()
    scan(5).save(tmp_path / "dog" / "nested dir" / "Hund größe 1.JPEG")
    scan(6).save(tmp_path / "cat" / "UPPER.PNG")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "empty_class").mkdir()
    found = find_labeled_images(tmp_path)
    assert found.classes == ["cat", "dog"]
    assert "dog/nested dir/Hund größe 1.JPEG" in found.paths
    assert "cat/UPPER.PNG" in found.paths
    assert not any(p.endswith(".txt") for p in found.paths)
    assert any("empty_class" in n for n in found.notes)
    assert len(found.paths) == 10


def test_odd_image_modes_become_rgb_and_exif_is_applied(tmp_path):
    gray = scan(1)
    gray.save(tmp_path / "gray.png")
    gray.convert("P").save(tmp_path / "palette.gif")
    rgba = gray.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: composited over white
    rgba.save(tmp_path / "rgba.png")
    Image.fromarray(np.asarray(gray).astype(np.uint16) * 257).save(tmp_path / "deep.png")
    wide = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    wide.save(tmp_path / "rotated.jpg", exif=exif.tobytes())

    for name in ("gray.png", "palette.gif", "rgba.png", "deep.png"):
        img = load_rgb(tmp_path / name)
        assert img.mode == "RGB" and img.size == (24, 24), name
    assert np.asarray(load_rgb(tmp_path / "rgba.png")).min() == 255
    deep = np.asarray(load_rgb(tmp_path / "deep.png"))[..., 0].astype(int)
    assert np.abs(deep - np.asarray(gray).astype(int)).max() <= 1  # 16-bit scaled back to 8-bit
    assert load_rgb(tmp_path / "rotated.jpg").size == (20, 40)


def test_unreadable_files_are_reported_with_reasons(tmp_path):
    good = tmp_path / "good.png"
    scan(2).save(good)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("this is not a jpeg")
    buf = io.BytesIO()
    scan(3, 64).convert("RGB").save(buf, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    missing = tmp_path / "missing.png"
    arr, problems = decode_images([good, empty, text, truncated, missing], 16)
    assert arr.shape == (5, 16, 16, 3) and arr[0].max() > 0
    assert set(problems) == {1, 2, 3, 4}
    assert "0 bytes" in problems[1]
    assert problems[2].startswith("cannot decode")
    assert "truncated" in problems[3] or "cannot decode" in problems[3]
    assert problems[4] == "file not found"


def test_csv_manifest_paths_are_relative_to_the_csv(tmp_path):
    make_tree(tmp_path / "imgs", per_class=3)
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,label\nimgs/cat/0.png,cat\nimgs/dog/1.png,dog\nimgs/cat/missing.png,cat\n")
    found = find_labeled_images(manifest)
    assert found.source == "csv" and found.classes == ["cat", "dog"]
    _, problems = decode_images([found.absolute(i) for i in range(3)], 8)
    assert problems == {2: "file not found"}


@pytest.mark.parametrize(
    "content,message",
    [
        ("file,class\na.png,x\n", "needs columns path,label"),
        ("path,label\na.png,\n", "row 2 has an empty path or label"),
        ("path,label\na.png,x\na.png,y\n", "listed twice"),
        ("", "not a readable CSV"),
    ],
)
def test_broken_manifests_name_the_problem(tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    with pytest.raises(DataCleanerError, match=message) as err:
        find_labeled_images(bad)
    assert str(bad) in str(err.value)


def test_empty_or_missing_data_and_tiny_classes_give_one_line_errors(tmp_path):
    with pytest.raises(DataCleanerError, match="does not exist"):
        find_labeled_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataCleanerError, match="no labeled images"):
        find_labeled_images(tmp_path / "empty")
    labels = np.array([0] * 10 + [1] * 2)
    with pytest.raises(DataCleanerError, match="'b' has 2 readable image.*lower --folds"):
        check_class_sizes(labels, ["a", "b"], np.ones(12, bool), 3, tmp_path)
    with pytest.raises(DataCleanerError, match="at least 2 classes"):
        check_class_sizes(np.zeros(10, int), ["a"], np.ones(10, bool), 3, tmp_path)

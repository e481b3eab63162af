"""How the benchmarks print: markdown tables (as pasted into docs/benchmarks.md) and contact sheets."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw


def table(header: list[str], rows: list[list], align: str = "l") -> str:
    """A markdown table. align: one letter per column, l or r (r: right-aligned, `---:`); the last letter
    goes on for the columns after it. Cells print as they are, floats with 3 significant digits."""
    def line(cells) -> str:
        return "| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in cells) + " |"

    rule = ["---:" if (align[i] if i < len(align) else align[-1]) == "r" else "---" for i in range(len(header))]
    return "\n".join([line(header), "|" + "|".join(rule) + "|", *map(line, rows)])


def pct(a: int, b: int) -> str:
    return f"{100 * a / b:.0f}%" if b else "-"


def tile(img: Image.Image, side: int) -> Image.Image:
    """An image at side x side px for a contact sheet: small images blown up pixel by pixel."""
    img = img.convert("RGB")
    return img.resize((side, side), Image.Resampling.NEAREST if max(img.size) < side else Image.Resampling.BICUBIC)


def contact_sheet(path: Path, pairs: list[tuple], cols: int, cell: int, gap: tuple[int, int] = (16, 16), margin: int = 2) -> Path:
    """A PNG of image pairs to judge by eye: (left, right or None, caption) per entry, `cols` pairs a row,
    each image in a cell x cell square (drawn `margin` px inside it), the caption under the pair."""
    w, h = 2 * cell + gap[0], cell + gap[1]
    sheet = Image.new("RGB", (cols * w, max(1, -(-len(pairs) // cols)) * h), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (left, right, caption) in enumerate(pairs):
        x, y = (k % cols) * w, (k // cols) * h
        sheet.paste(left, (x + margin, y + margin))
        if right is not None:
            sheet.paste(right, (x + cell + margin, y + margin))
        draw.text((x + margin, y + cell), caption, fill="black")
    sheet.save(path)
    return path

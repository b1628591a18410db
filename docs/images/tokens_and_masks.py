"""Draw docs/images/tokens-and-masks.svg: a clip's tokens (frame x modality x patch) and, for one
query token, the keys it attends under each mask. The masks are the SDK's own
(``extpose_sdk.extend.parse_mask(...).allowed``), so the picture cannot drift from the code;
tests/test_docs_blocks.py checks the committed SVG is what this script draws.

    python docs/images/tokens_and_masks.py            # rewrites the SVG beside this file
"""

from __future__ import annotations

import sys
from html import escape
from pathlib import Path

T, M, N = 4, 2, 4  # frames, modalities, patches per image (2 x 2): small enough to read
MODALITIES = ("rgb", "skeleton")
COLOURS = {"rgb": "#e39b36", "skeleton": "#3b7dd8"}
QUERY = (2, 0, 0)  # frame 2, rgb, patch 0
PANELS = (
    ("full", None, "the whole clip"),
    ("frame", None, "its own frame, every modality"),
    ("paper", None, "own frame: all modalities; other frames: its own modality"),
    ("window(1)", None, "frames at most 1 away"),
    ("causal(1)", None, "itself and the frame before"),
    ("paper+window(1)", None, "paper, limited to frames at most 1 away"),
    ("paper", (3, 1), "paper, frame 3 without a skeleton image (present False): "
     "its tokens are keys for no one"),
)
OUT = Path(__file__).with_name("tokens-and-masks.svg")


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "start",
          weight: str = "normal", fill: str = "#222") -> str:
    return (f'<text x="{x:g}" y="{y:g}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{escape(text, quote=False)}</text>')


def _grid(x0: float, y0: float, cell: float, fill, stroke, frame_gap: float, mod_gap: float,
          numbers: bool = False) -> list[str]:
    """Tiles for every (t, m, n): frames left to right, modalities top to bottom, patches 2 x 2."""
    out = []
    for t in range(T):
        for m in range(M):
            for n in range(N):
                x = x0 + t * (2 * cell + frame_gap) + (n % 2) * cell
                y = y0 + m * (2 * cell + mod_gap) + (n // 2) * cell
                out.append(f'<rect x="{x:g}" y="{y:g}" width="{cell:g}" height="{cell:g}" '
                           f'fill="{fill(t, m, n)}" stroke="{stroke(t, m, n)}" stroke-width="1"/>')
                if numbers:
                    out.append(_text(x + cell / 2, y + cell / 2 + 4, str(n), 10, "middle",
                                     fill="#fff"))
    return out


def draw() -> str:
    from extpose_sdk.extend import parse_mask

    def index(t, m, n):
        return (t * M + m) * N + n

    parts = []
    width, cell, gap = 860, 22, 16
    # 1. the token grid of one clip, and the one sequence it becomes
    parts.append(_text(20, 28, "A clip's tokens: T frames x M modalities x N patches, one "
                       "sequence through the ViT's own blocks", 15, weight="bold"))
    x0, y0 = 110, 62
    for t in range(T):
        parts.append(_text(x0 + t * (2 * cell + gap) + cell, y0 - 8, f"frame t={t}", 11,
                           "middle"))
    for m, name in enumerate(MODALITIES):
        parts.append(_text(x0 - 10, y0 + m * (2 * cell + 8) + cell + 4, name, 12, "end",
                           fill=COLOURS[name]))
    parts += _grid(x0, y0, cell, lambda t, m, n: COLOURS[MODALITIES[m]], lambda t, m, n: "#fff",
                   gap, 8, numbers=True)
    parts.append(_text(x0, y0 + 4 * cell + 8 + 20, "each image: N patch tokens (here 2 x 2; "
                       "256 x 192 crops with 16 px patches give 16 x 12)", 11))
    sx, sy, sc = 470, 74, 11
    parts.append(_text(sx, sy - 12, f"the sequence, laid out (T, M, N): L = {T} x {M} x {N} = "
                       f"{T * M * N} tokens", 11))
    for t in range(T):
        for m in range(M):
            for n in range(N):
                x = sx + index(t, m, n) * sc + t * 4
                parts.append(f'<rect x="{x:g}" y="{sy:g}" width="{sc - 1:g}" height="{sc * 2:g}" '
                             f'fill="{COLOURS[MODALITIES[m]]}"/>')
        parts.append(_text(sx + (t * M * N + M * N / 2) * sc + t * 4, sy + sc * 2 + 14, f"t={t}",
                           10, "middle"))
    parts.append(_text(sx, sy + 58, "the mask: an (L, L) table of who may attend to whom;", 11))
    parts.append(_text(sx, sy + 73, "a head then reads each frame's M x N tokens", 11))

    # 2. one panel per mask: the keys the query token attends
    parts.append(_text(20, 200, "Which keys the query token (frame 2, rgb, patch 0; black "
                       "outline) attends under each mask", 15, weight="bold"))
    pc, pgap, pw, ph = 13, 8, 205, 150
    qt, qm, qn = QUERY
    for i, (mask, absent, caption) in enumerate(PANELS):
        px, py = 20 + (i % 4) * pw, 225 + (i // 4) * ph
        allowed = parse_mask(mask).allowed(T, M, N)[index(*QUERY)]

        def fill(t, m, n, allowed=allowed, absent=absent):
            if absent is not None and (t, m) == absent:
                return "url(#absent)"
            return COLOURS[MODALITIES[m]] if allowed[index(t, m, n)] else "#f2f2f2"

        def stroke(t, m, n):
            return "#111" if (t, m, n) == QUERY else "#fff"

        parts.append(_text(px, py + 12, mask if absent is None else f"{mask}, one image absent",
                           13, weight="bold"))
        parts += _grid(px, py + 24, pc, fill, stroke, pgap, 4)
        qx = px + qt * (2 * pc + pgap) + (qn % 2) * pc
        qy = py + 24 + qm * (2 * pc + 4) + (qn // 2) * pc
        parts.append(f'<rect x="{qx:g}" y="{qy:g}" width="{pc:g}" height="{pc:g}" fill="none" '
                     'stroke="#111" stroke-width="2.5"/>')
        words, line, lines = caption.split(), "", []
        for word in words:  # wrap the caption at about 34 characters
            if len(line) + len(word) > 34:
                lines.append(line)
                line = ""
            line = f"{line} {word}".strip()
        lines.append(line)
        for j, text in enumerate(lines):
            parts.append(_text(px, py + 24 + 4 * pc + 4 + 18 + 14 * j, text, 11, fill="#444"))
    lx, ly = 20 + 3 * pw, 225 + ph
    legend = [(COLOURS["rgb"], "an rgb key it attends"), (COLOURS["skeleton"],
              "a skeleton key it attends"), ("#f2f2f2", "a key masked out"),
              ("url(#absent)", "an absent image: no token")]
    for j, (colour, label) in enumerate(legend):
        parts.append(f'<rect x="{lx:g}" y="{ly + 20 + 20 * j:g}" width="13" height="13" '
                     f'fill="{colour}" stroke="#bbb"/>')
        parts.append(_text(lx + 20, ly + 31 + 20 * j, label, 11))
    parts.append(_text(lx, ly + 120, "under frame, each frame runs", 11, fill="#444"))
    parts.append(_text(lx, ly + 134, "as its own short sequence", 11, fill="#444"))
    height = 225 + 2 * ph + 10
    header = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
              f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">\n'
              '<title>ExtPose tokens, modalities, frames and attention masks</title>\n'
              '<defs><pattern id="absent" width="6" height="6" patternUnits="userSpaceOnUse" '
              'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
              '<line x1="0" y1="0" x2="0" y2="6" stroke="#999" stroke-width="2"/></pattern></defs>\n'
              f'<rect width="{width}" height="{height}" fill="#fff"/>\n')
    return header + "\n".join(parts) + "\n</svg>\n"


if __name__ == "__main__":
    OUT.write_text(draw())
    print(f"wrote {OUT}", file=sys.stderr)

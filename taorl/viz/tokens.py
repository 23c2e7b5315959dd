"""Token-level HTML of one trajectory: every token coloured by a chosen quantity.

    token_scale(tokens, quantity)                   -> (lo, hi), fixed once per run
    token_html(tokens, quantity, scale, ...)        -> HTML string (st.html / IPython.display.HTML)

Every token's text goes through html.escape; whitespace is made visible (· for a space, → for a
tab, ↵ then a line break for a newline). Tool output is boxed and greyed (it is never trained on);
prompt tokens are dimmed. Hovering a token shows its exact values. Each coloured token's text is
black or white, whichever contrasts more with its background (text_color_for), so a view stays
readable whatever the range of the values (a random model's entropies near log |V| included).
"""

from __future__ import annotations

import html
import math

import numpy as np
import polars as pl

# quantity -> (column, diverging around 0?, label)
QUANTITIES = {
    "entropy": ("entropy", False, "entropy H (nats)"),
    "logprob": ("logprob_train", False, "log-prob (trainer)"),
    "advantage": ("advantage", True, "advantage Â"),
    "shaped advantage": ("shaped_advantage", True, "shaped advantage Ã"),
    "shaping effect": (None, True, "Ã − Â"),
    "weight": ("weight", False, "loss weight"),
    "gate": ("gate", False, "post-tool gate g"),
}
# sequential: light yellow -> orange -> dark red; diverging: blue -> white -> red
_SEQ = [(255, 255, 229), (254, 227, 145), (254, 153, 41), (204, 76, 2), (102, 37, 6)]
_DIV = [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)]


def _values(tokens: pl.DataFrame, quantity: str) -> np.ndarray:
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity {quantity!r}: expected one of {', '.join(QUANTITIES)}")
    col = QUANTITIES[quantity][0]
    if col is None:  # Ã − Â
        d = tokens.select((pl.col("shaped_advantage") - pl.col("advantage")).cast(pl.Float64)).to_series()
        return d.to_numpy(allow_copy=True).astype(float)
    return tokens.get_column(col).cast(pl.Float64).to_numpy(allow_copy=True).astype(float)


def token_scale(tokens: pl.DataFrame, quantity: str) -> tuple[float, float]:
    """A colour range for `quantity` from a reference set of token rows (e.g. a run's first step
    with tokens), kept fixed for the run so colours compare across steps: [p1, p99] of the model
    tokens, symmetric ±p99(|x|) for the diverging quantities, [0, 1] for weight and gate."""
    _, diverging, _ = QUANTITIES[quantity]
    if quantity in ("weight", "gate"):
        return (0.0, 1.0)
    model = tokens.filter(pl.col("segment") == "model") if "segment" in tokens.columns else tokens
    v = _values(model, quantity)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (-1.0, 1.0) if diverging else (0.0, 1.0)
    if diverging:
        m = float(np.quantile(np.abs(v), 0.99)) or 1e-6
        return (-m, m)
    lo, hi = float(np.quantile(v, 0.01)), float(np.quantile(v, 0.99))
    if quantity == "entropy":
        lo = 0.0
    return (lo, hi if hi > lo else lo + 1e-6)


def _rgb(t: float, stops: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    a, b = stops[i], stops[i + 1]
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))  # type: ignore[return-value]


def _rgb_of(value: float | None, scale: tuple[float, float], diverging: bool) -> tuple[int, int, int] | None:
    if value is None or not math.isfinite(value):
        return None
    lo, hi = scale
    t = (value - lo) / (hi - lo) if hi > lo else 0.5
    return _rgb(t, _DIV if diverging else _SEQ)


def color_of(value: float | None, scale: tuple[float, float], diverging: bool) -> str | None:
    """CSS colour of a value on the scale (None for a missing value)."""
    c = _rgb_of(value, scale, diverging)
    return None if c is None else f"rgb({c[0]},{c[1]},{c[2]})"


def luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance: L = 0.2126 R + 0.7152 G + 0.0722 B of the linearised channels,
    c_lin = c/12.92 if c <= 0.04045 else ((c + 0.055)/1.055)^2.4, with c = channel/255."""
    def lin(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG 2 contrast ratio (L_light + 0.05) / (L_dark + 0.05), from 1 (same) to 21 (black on white)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


BLACK, WHITE = (0, 0, 0), (255, 255, 255)


def text_color_for(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever contrasts more with the background. The worse of the two is at
    least sqrt(21) ≈ 4.58 : 1 for any background (above WCAG AA's 4.5), so every cell stays
    readable however the values fall on the scale."""
    return BLACK if contrast_ratio(background, BLACK) >= contrast_ratio(background, WHITE) else WHITE


def _visible(text: str) -> str:
    """Escaped token text with whitespace made visible."""
    out = html.escape(text)
    out = out.replace(" ", '<span class="ws">·</span>').replace("\t", '<span class="ws">→</span>')
    return out.replace("\n", '<span class="ws">↵</span><br>')


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


CSS = """
<style>
.tao-tokens{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px;line-height:1.9;
  white-space:normal;word-break:break-word;color:#1a1a1a}
.tao-tokens .t{border-radius:3px;padding:1px 0;cursor:default}
.tao-tokens .t:hover{outline:1px solid #333}
.tao-tokens .ws{opacity:.5}  /* follows the token's text colour */
.tao-tokens .prompt{color:#888}
.tao-tokens .tool{display:inline;background:#f1f1f1;color:#6b6b6b;border:1px solid #b5b5b5;
  border-radius:4px;padding:2px 4px;margin:0 2px;box-decoration-break:clone;-webkit-box-decoration-break:clone}
.tao-tokens .tool-tag{font-size:10px;color:#fff;background:#888;border-radius:3px;padding:0 4px;margin-right:4px}
.tao-legend{font-family:system-ui,sans-serif;font-size:12px;color:#444;margin:4px 0 10px 0;display:flex;
  align-items:center;gap:8px}
.tao-legend .bar{width:220px;height:12px;border-radius:3px;border:1px solid #ccc}
</style>
"""


def legend_html(quantity: str, scale: tuple[float, float]) -> str:
    _, diverging, name = QUANTITIES[quantity]
    stops = _DIV if diverging else _SEQ
    grad = ",".join(f"rgb{s}" for s in stops)
    return (f'<div class="tao-legend"><b>{html.escape(name)}</b><span>{scale[0]:.3g}</span>'
            f'<span class="bar" style="background:linear-gradient(90deg,{grad})"></span>'
            f'<span>{scale[1]:.3g}</span><span style="margin-left:12px">'
            f'<span class="tool" style="font-family:monospace">tool output</span> never trained on</span></div>')


def token_html(tokens: pl.DataFrame, quantity: str = "entropy", scale: tuple[float, float] | None = None,
               show_prompt: bool = False, legend: bool = True) -> str:
    """HTML of one trajectory's token rows (sorted by pos). Model tokens are coloured by
    `quantity` on `scale` (default: token_scale of these rows); tool tokens are boxed and greyed,
    prompt tokens dimmed (or left out); the hover title holds the exact values of each token."""
    df = tokens.sort("pos")
    if not show_prompt:
        df = df.filter(pl.col("segment") != "prompt")
    _, diverging, _ = QUANTITIES[quantity]
    scale = scale or token_scale(df, quantity)
    vals = _values(df, quantity)
    cols = ["pos", "turn", "segment", "token", "offset", "entropy", "logprob_sample", "logprob_train",
            "advantage", "shaped_advantage", "gate", "weight"]
    rows = df.select([c for c in cols if c in df.columns]).to_dicts()
    parts = [CSS, '<div class="tao-tokens">']
    open_tool = False
    for r, v in zip(rows, vals):
        seg = r["segment"]
        if seg == "tool" and not open_tool:
            parts.append('<span class="tool"><span class="tool-tag">tool</span>')
            open_tool = True
        elif seg != "tool" and open_tool:
            parts.append("</span>")
            open_tool = False
        title = (f"pos {r['pos']} · turn {r['turn']} · {seg}"
                 + (f" · offset {r['offset']}" if r.get("offset") is not None else "")
                 + f"&#10;entropy {_fmt(r.get('entropy'))} · logprob {_fmt(r.get('logprob_train'))}"
                 + f" (sampled {_fmt(r.get('logprob_sample'))})"
                 + f"&#10;Â {_fmt(r.get('advantage'))} · Ã {_fmt(r.get('shaped_advantage'))}"
                 + f" · gate {_fmt(r.get('gate'))} · weight {_fmt(r.get('weight'))}"
                 + f"&#10;token {html.escape(repr(r['token']), quote=True)}")
        text = _visible(r["token"] or "")
        if seg == "model":
            c = _rgb_of(float(v), scale, diverging)
            fg = text_color_for(c) if c else None
            style = (f' style="background:rgb({c[0]},{c[1]},{c[2]});color:rgb({fg[0]},{fg[1]},{fg[2]})"'
                     if c else "")
            parts.append(f'<span class="t"{style} title="{title}">{text}</span>')
        else:
            cls = "t prompt" if seg == "prompt" else "t"
            parts.append(f'<span class="{cls}" title="{title}">{text}</span>')
    if open_tool:
        parts.append("</span>")
    parts.append("</div>")
    head = legend_html(quantity, scale) if legend else ""
    return parts[0] + head + "".join(parts[1:])

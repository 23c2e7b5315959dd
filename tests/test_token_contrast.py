"""Token views stay readable at any value range: every coloured token's text colour is chosen from
its background, and the WCAG contrast of the pair is at least 4.5 : 1 (AA) wherever the values fall."""

import math
import re

import polars as pl
import pytest

from taorl.viz import token_html
from taorl.viz.tokens import BLACK, WHITE, contrast_ratio, luminance, text_color_for

SPAN = re.compile(r'style="background:rgb\((\d+),(\d+),(\d+)\);color:rgb\((\d+),(\d+),(\d+)\)"')


def test_wcag_reference_values():
    assert luminance(WHITE) == pytest.approx(1.0)
    assert luminance(BLACK) == 0.0
    assert contrast_ratio(BLACK, WHITE) == pytest.approx(21.0)
    assert contrast_ratio(WHITE, BLACK) == pytest.approx(21.0)
    # mid grey #777777: c = 119/255 = 0.4667 -> ((0.4667 + 0.055)/1.055)^2.4 = 0.1845 (by hand)
    assert luminance((119, 119, 119)) == pytest.approx(0.1845, abs=2e-4)
    # the darkest entropy colour (102, 37, 6), channel by channel:
    # R 0.4 -> 0.1329, G 0.1451 -> 0.01850, B 0.02353 -> 0.001821; L = 0.2126 R + 0.7152 G + 0.0722 B
    assert luminance((102, 37, 6)) == pytest.approx(0.2126 * 0.1329 + 0.7152 * 0.01850 + 0.0722 * 0.001821, abs=2e-4)


def test_text_colour_follows_the_background():
    assert text_color_for((102, 37, 6)) == WHITE       # dark brown (top of the entropy scale)
    assert text_color_for((255, 255, 229)) == BLACK    # pale yellow (bottom)
    assert text_color_for((33, 102, 172)) == WHITE     # strong blue (diverging, negative end)
    assert text_color_for((247, 247, 247)) == BLACK    # the diverging scale's white middle


def _frame(values):
    n = len(values)
    return pl.DataFrame({"pos": list(range(n)), "turn": [0] * n, "segment": ["model"] * n,
                         "token": [f"t{k} " for k in range(n)], "offset": [None] * n,
                         "entropy": values, "logprob_sample": [-1.0] * n, "logprob_train": [-1.0] * n,
                         "advantage": values, "shaped_advantage": [v * 1.01 for v in values],
                         "gate": [1.0] * n, "weight": [1.0] * n})


# a random model's entropies reach log |V| = log 49152 = 10.8 nats; a primed one sits near 0-3
RANGES = {"random model, own scale": ([10.8 * k / 40 for k in range(41)], None),
          "random model on a 0-3 scale": ([10.8 * k / 40 for k in range(41)], (0.0, 3.0)),
          "primed model": ([3.0 * k / 40 for k in range(41)], None),
          "constant": ([10.8] * 5, None)}


@pytest.mark.parametrize("quantity", ["entropy", "advantage"])
@pytest.mark.parametrize("case", list(RANGES))
def test_every_coloured_token_meets_wcag_aa(case, quantity):
    values, scale = RANGES[case]
    html = token_html(_frame(values), quantity, scale)
    pairs = [((int(a), int(b), int(c)), (int(d), int(e), int(f))) for a, b, c, d, e, f in SPAN.findall(html)]
    assert len(pairs) == len(values)                    # every model token carries both colours
    worst = min(contrast_ratio(bg, fg) for bg, fg in pairs)
    assert worst >= 4.5, f"{case}/{quantity}: contrast {worst:.2f} : 1"
    if quantity == "entropy" and scale is None and len(set(values)) > 1:
        assert {fg for _, fg in pairs} == {BLACK, WHITE}  # the scale spans light and dark backgrounds


def test_worst_case_background_is_above_aa():
    # the better of black and white is worst where both tie: (L+0.05)/0.05 = 1.05/(L+0.05) -> ratio sqrt(21)
    grey = [(v, v, v) for v in range(256)]
    worst = min(contrast_ratio(g, text_color_for(g)) for g in grey)
    assert worst == pytest.approx(math.sqrt(21), abs=0.05) and worst >= 4.5

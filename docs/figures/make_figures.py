"""Renders the README's figures (PNG) from the same taorl calls the notebooks make:

    .venv/bin/python docs/figures/make_figures.py

    entropy_boundary.png   SmolLM2-135M, before training: entropy vs offset from the tool return
                           on the replayed demo batch (notebook 05)
    shaping_factor.png     (1 + a·Ĥ) on gated tokens per gate: post_tool / all / non_post_tool (notebook 06)
    token_view.png         one replayed trajectory, model tokens coloured by entropy, tool output boxed (00/01)

Plotly figures are written as self-contained HTML and photographed by headless Chromium (Debian's
/usr/bin/chromium through Playwright), so no image-export package is needed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import plotly.express as px
import polars as pl

from taorl.lab.ablation import decide, profile_config, token_frame
from taorl.data.procedural import generate
from taorl.store.queries import boundary_profile, boundary_stats
from taorl.tools import Sandbox
from taorl.train.policy import build_policy
from taorl.viz import boundary_profile_figure, token_html
from taorl.lab.walkthrough import demo_scripts, replay_rollouts

OUT = Path(__file__).parent
SHORT = ["rollout.max_turns=3", "rollout.max_turn_tokens=64", "rollout.max_response_tokens=256",
         "rollout.obs_max_tokens=32", "rollout.group_size=4", "rollout.batch_prompts=4", "tool.timeout_s=2",
         "model.name=smollm2-135m", "model.dtype=float32", "model.lora.enabled=false"]


def shoot(html: str, out: Path, width: int = 1000, height: int = 480) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as d:
        page_file = Path(d) / "fig.html"
        page_file.write_text(html)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(page_file.as_uri())
            page.wait_for_timeout(800)
            page.screenshot(path=str(out))
            browser.close()
    print("wrote", out)


def main() -> None:
    cfg = profile_config("tiny", SHORT)
    policy = build_policy(cfg)
    problems = generate(4, difficulty=0, seed=0)
    with Sandbox(cfg.tool) as sb:
        trajs = replay_rollouts(problems, demo_scripts(problems), policy.model, policy.tokenizer, cfg, sb)
    dec = decide(trajs, cfg)
    tokens = token_frame(trajs, dec, cfg, policy)

    prof = boundary_profile(boundary_stats(tokens, before=8, after=24), buckets=1)
    fig = boundary_profile_figure({"SmolLM2-135M, before training": prof},
                                  title="Entropy vs offset from the tool return (replayed demo batch)")
    shoot(fig.to_html(include_plotlyjs=True, full_html=True), OUT / "entropy_boundary.png")

    gates = {"post_tool (paper)": [], "all (code)": ["algo.shaping.gate=all"],
             "non_post_tool (control)": ["algo.shaping.gate=non_post_tool"]}
    frames = [token_frame(trajs, dec, profile_config("tiny", [*SHORT, *ov]), policy).with_columns(pl.lit(a).alias("gate kind"))
              for a, ov in gates.items()]
    tok = pl.concat(frames).filter((pl.col("gate") == 1) & (pl.col("weight") > 0))
    fig = px.histogram(tok.to_pandas(), x="factor", color="gate kind", barmode="overlay", nbins=40,
                       title="(1 + a·Ĥ) on gated, trained tokens, a = 0.01")
    fig.update_layout(template="plotly_white")
    shoot(fig.to_html(include_plotlyjs=True, full_html=True), OUT / "shaping_factor.png")

    t = next(x for x in trajs if x.n_call == 2)
    one = tokens.filter(pl.col("traj") == t.group * 4 + t.index)
    shoot(f"<html><body style='font-family:sans-serif;padding:12px'>{token_html(one, 'entropy')}</body></html>",
          OUT / "token_view.png", width=900, height=300)


if __name__ == "__main__":
    main()

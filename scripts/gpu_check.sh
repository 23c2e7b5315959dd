#!/usr/bin/env bash
# Every GPU check of taorl in one run on the GPU machine, each stage with its own time limit, the
# whole ending by DEADLINE seconds (default 540: one call is limited to 600 s). docs/gpu.md says how
# to stage the packages and call it; in short, the last staging call is
#     carry [".gpu/pN", ".gpu/cache"]   command: bash .gpu/pN/stage.sh && bash scripts/gpu_check.sh
# (.gpu/cache holds the SmolLM2 tokenizer: here, once, `TAORL_CACHE=.gpu/cache taorl model prepare tiny`).
#
# Stages, in order (a stage that no longer fits before DEADLINE is skipped and says so):
#   env        GPU, package versions
#   prime      scripts/gpu_prime.py: the smoke model primed on 2 problems (CPU, own process), so the
#              RL runs have mixed-outcome groups: update, weight sync and metrics all happen
#   unsloth    taorl train configs/gpu_smoke.yaml (vLLM inside Unsloth, LoRA), 2 steps
#   resume     taorl train --resume of that run to 3 steps (a new process: a GPU resume)
#   lora       rollout.vllm.mode=standalone (taorl's own vLLM, LoRA merged on sync), 3 steps
#   full       standalone + model.lora.enabled=false (full fine-tuning), 3 steps
#   eval       taorl eval of the primed model on gsm8k (the GPU engine: vLLM)
#   fence      tests/test_gpu_device.py: checks of the run directories above, the closing-fence stop
#   engines    benchmarks/gpu/bench_engines.py  (vLLM vs hf rollout throughput)
#   overhead   benchmarks/gpu/bench_overhead.py (TAO-RL over plain GRPO)
#   steptrl    benchmarks/gpu/bench_step_vs_trl.py (one RL step vs TRL GRPOTrainer + vLLM colocate)
# Each training run is its own process: vLLM's sleep mode allows one engine per process.
# torch.compile is OFF by default (TORCH_COMPILE_DISABLE=1: Unsloth and vLLM start in seconds instead
# of minutes); the benchmark tables say so. TORCH_COMPILE_DISABLE=0 for tuned timings (count 2-3
# minutes of compilation per model shape, so run the benchmarks alone: STAGES="env engines").
#
# Options (environment): DEADLINE=540  STAGES="env prime ..." (a subset, in the order above)
#   DRY_RUN=1  print each stage's command and limit instead of running it (works anywhere)
# Results: $OUT/summary.txt, one log per stage, RESULTS.md (the benchmark tables) and the runs'
# manifests and metrics under $OUT (at most a few files come back: keep them small).
set -u
cd "$(dirname "$0")/.."
T0=$(date +%s); DEADLINE=${DEADLINE:-540}
OUT=${OUT:-/tmp/taorl-gpu-check}; mkdir -p "$OUT"
ALL="env prime unsloth resume lora full eval fence engines overhead steptrl"
STAGES=${STAGES:-$ALL}
DRY_RUN=${DRY_RUN:-0}
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TORCH_COMPILE_DISABLE=${TORCH_COMPILE_DISABLE:-1}
export TAORL_CACHE=${TAORL_CACHE:-/tmp/taorl-cache}
mkdir -p "$TAORL_CACHE"; [ -d .gpu/cache ] && cp -r .gpu/cache/. "$TAORL_CACHE"/ 2>/dev/null
PY=${PY:-python3}
WORK=${WORK:-/tmp/taorl-gpu-work}; mkdir -p "$WORK"
PRIMED=$WORK/primed; RUNS=$WORK/runs
export TAORL_GPU_RUNS=$RUNS TAORL_GPU_PRIMED=$PRIMED
SMOKE="configs/gpu_smoke.yaml logging.progress=false"
S=$OUT/summary.txt; : > "$S"

taorl() { "$PY" -c "import sys; from taorl.cli import main; sys.exit(main(sys.argv[1:]))" "$@"; }
wanted() { case " $STAGES " in *" $1 "*) return 0;; *) return 1;; esac; }

stage() {  # stage NAME LIMIT_S command...  (runs when in STAGES and there is time left)
  local name=$1 lim=$2; shift 2
  wanted "$name" || return 0
  if [ "$DRY_RUN" = 1 ]; then echo "$name (limit ${lim}s): $*" | tee -a "$S"; return 0; fi
  local left=$(( DEADLINE - ($(date +%s) - T0) - 5 ))
  if [ "$left" -lt 20 ]; then echo "$name: SKIPPED (no time left before DEADLINE=$DEADLINE)" >> "$S"; return 0; fi
  [ "$lim" -gt "$left" ] && lim=$left
  local s; s=$(date +%s)
  timeout -k 5 "$lim" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  echo "$name: rc=$rc $(( $(date +%s) - s ))s (limit ${lim}s)$([ $rc = 124 ] && echo ' TIMED OUT')" >> "$S"
  tail -n 3 "$OUT/$name.log" | sed "s/^/  $name| /" >> "$S"
}

env_report() {
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1
  "$PY" -c "
import importlib.metadata as m
for p in ('torch', 'transformers', 'peft', 'unsloth', 'unsloth_zoo', 'vllm', 'trl', 'polars', 'math_verify'):
    try: print(p, m.version(p))
    except Exception: print(p, 'MISSING')
import torch; print('cuda', torch.cuda.is_available(), torch.version.cuda)"
  echo "TORCH_COMPILE_DISABLE=$TORCH_COMPILE_DISABLE"
}

# a train stage: taorl train <args>, then the run's manifest and metrics copied to $OUT
train_stage() {  # train_stage NAME LIMIT RUN_DIR args...
  local name=$1 lim=$2 run=$3; shift 3
  stage "$name" "$lim" taorl train "$@"
  [ "$DRY_RUN" = 1 ] && return 0
  [ -f "$run/manifest.json" ] && cp "$run/manifest.json" "$OUT/$name.manifest.json"
  "$PY" -c "
import sys, polars as pl
from taorl.store import open_run
m = open_run(sys.argv[1]).metrics()
cols = [c for c in ('step', 'reward', 'accuracy', 'train/trained_rollouts', 'loss', 'sampling/logp_diff_mean',
                    'sampling/logp_diff_max', 'sampling/seq_ratio_max', 'perf/gen_s', 'perf/train_s', 'perf/step_s')
        if c in m.columns]
pl.Config.set_tbl_cols(20); pl.Config.set_tbl_width_chars(200)
print(m.select(cols))" "$run" >> "$OUT/$name.log" 2>&1 || true
}

wanted env && { if [ "$DRY_RUN" = 1 ]; then echo "env: nvidia-smi + package versions" | tee -a "$S"; else env_report > "$OUT/env.log" 2>&1; cat "$OUT/env.log" >> "$S"; fi; }
# primed here unless a primed copy was carried in and copied to $PRIMED (docs/gpu.md, step 2b)
if [ -f "$PRIMED/weights/config.json" ] && [ -f "$PRIMED/problems.jsonl" ]; then
  wanted prime && echo "prime: using the primed model already in $PRIMED" >> "$S"
else
  stage prime 150 "$PY" scripts/gpu_prime.py configs/gpu_smoke.yaml "$PRIMED"
fi
P="train.init_from=$PRIMED/weights data.train=$PRIMED/problems.jsonl"   # what gpu_prime.py writes
# shellcheck disable=SC2086  # $SMOKE and $P are lists of overrides
train_stage unsloth 100 "$RUNS/unsloth" $SMOKE $P rollout.vllm.mode=unsloth train.steps=2 --run-dir "$RUNS/unsloth"
train_stage resume 90 "$RUNS/unsloth" --resume "$RUNS/unsloth" train.steps=3 logging.progress=false
# shellcheck disable=SC2086
train_stage lora 100 "$RUNS/lora" $SMOKE $P rollout.vllm.mode=standalone --run-dir "$RUNS/lora"
# shellcheck disable=SC2086
train_stage full 100 "$RUNS/full" $SMOKE $P rollout.vllm.mode=standalone model.lora.enabled=false train.lr=1e-5 \
  --run-dir "$RUNS/full"
stage eval 80 taorl eval "$PRIMED/weights" --benchmarks gsm8k --limit 4 --k 2 --out "$RUNS/eval" \
  model.max_seq_len=1024 rollout.vllm.gpu_memory_utilization=0.10 eval.max_response_tokens=256 logging.progress=false
[ -f "$OUT/eval.log" ] && cp "$OUT/eval.log" "$RUNS/eval.log"
stage fence 90 "$PY" -m pytest -q -m gpu tests/test_gpu_device.py -p no:cacheprovider
stage engines 90 "$PY" benchmarks/gpu/bench_engines.py --repeats 1 --tokens 128
stage overhead 80 "$PY" benchmarks/gpu/bench_overhead.py --repeats 1
stage steptrl 150 "$PY" benchmarks/gpu/bench_step_vs_trl.py --steps 2
[ "$DRY_RUN" = 1 ] || cp benchmarks/gpu/RESULTS.md "$OUT/RESULTS.md" 2>/dev/null
[ "$DRY_RUN" = 1 ] && exit 0
echo "total $(( $(date +%s) - T0 ))s of DEADLINE=${DEADLINE}s; logs in $OUT" >> "$S"
cat "$S"
echo "next: copy the new tables of $OUT/RESULTS.md into benchmarks/gpu/RESULTS.md and the figures into docs/gpu.md"

#!/usr/bin/env bash
# GPU checks of the training paths that CPU-only CI cannot run, on one CUDA device.
#
#   bench/gpu_check.sh STORE OUT
#
# STORE is a BC trajectory store (e.g. stores/bc of a `make run`), OUT a folder for logs and runs;
# STEP_TIMEOUT (seconds, default 600) bounds each step; ONLY="name name..." runs just those steps.
# Each step prints its exit status, wall time and the end of its log:
#   1. throughput and peak memory of one SFT step: tiny at 8k tokens, Qwen2.5-Coder-7B shape at 32k
#      (random init, bf16, activation checkpointing), full vs chunked supervised-only logits;
#   2. `python -m oec.train` of the tiny student on one GPU in bf16-mixed, attention chosen by `auto`;
#   3. the 7B recipe (model=qwen2.5-coder-7b: FSDP, bf16-true, activation checkpointing, chunked
#      loss) on a random-init checkpoint of Qwen2.5-Coder-1.5B's shape, a few steps, then its export
#      reloaded with AutoModelForCausalLM;
#   4. the same recipe under DeepSpeed ZeRO-3 (trainer=deepspeed), and its consolidated export reloaded.
set -uo pipefail
store=$(realpath "$1")
out=$(realpath -m "$2")
mkdir -p "$out"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline PYTHONUNBUFFERED=1

step() {
    local name=$1 start=$SECONDS
    shift
    [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]] && return
    echo "== $name"
    timeout "${STEP_TIMEOUT:-600}" "$@" >"$out/$name.log" 2>&1
    echo "exit $? after $((SECONDS - start)) s"
    grep -v -e '^\s*$' -e 'it/s' "$out/$name.log" | tail -n 12
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import importlib.util, torch, transformers, lightning; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'lightning', lightning.__version__, \
'flash_attn', importlib.util.find_spec('flash_attn') is not None, \
'deepspeed', importlib.util.find_spec('deepspeed') is not None)"

step bench_tiny python3 bench/train_throughput.py --device cuda --seq-len 8192
step bench_7b python3 bench/train_throughput.py --shape qwen2.5-coder-7b --device cuda --seq-len 32768 --steps 2

step train_tiny python3 -m oec.train +exp=demo name=tiny_gpu paths.root="$out" logger=local \
    "data.sources=[{store:$store,arm:bc}]" trainer.accelerator=gpu model.precision=bf16-mixed \
    trainer.max_steps=200 hydra.run.dir="$out/tiny_gpu"

checkpoint="$out/qwen2.5-coder-1.5b-shape"
step make_checkpoint python3 -c "
import sys, torch
from transformers import AutoModelForCausalLM, Qwen2Config
from oec.chat import load_tokenizer
config = Qwen2Config(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
    num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
    rope_parameters={'rope_type': 'default', 'rope_theta': 1e6}, bos_token_id=151643, eos_token_id=151645)
with torch.device('cuda'):
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
model.save_pretrained(sys.argv[1])
load_tokenizer().save_pretrained(sys.argv[1])
print(sum(p.numel() for p in model.parameters()) / 1e9, 'B parameters')
" "$checkpoint"
step train_fsdp python3 -m oec.train +exp=oec model=qwen2.5-coder-7b name=fsdp_1.5b paths.root="$out" logger=local \
    "data.sources=[{store:$store,arm:bc}]" model.name_or_path="$checkpoint" trainer.devices=1 \
    trainer.max_steps=6 trainer.val_check_interval=null data.val_fraction=0.1 \
    hydra.run.dir="$out/fsdp_1.5b"
reload='
import sys, torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16).to("cuda")
ids = torch.tensor([[151644, 872, 198, 9707]], device="cuda")
print(type(model).__name__, model.dtype, "logits", tuple(model(input_ids=ids).logits.shape))
'
step reload_export python3 -c "$reload" "$out/fsdp_1.5b/model"
step train_deepspeed python3 -m oec.train +exp=oec model=qwen2.5-coder-7b trainer=deepspeed name=ds_1.5b \
    paths.root="$out" logger=local "data.sources=[{store:$store,arm:bc}]" model.name_or_path="$checkpoint" \
    trainer.devices=1 trainer.max_steps=6 trainer.val_check_interval=null data.val_fraction=0.1 \
    hydra.run.dir="$out/ds_1.5b"
step reload_deepspeed_export python3 -c "$reload" "$out/ds_1.5b/model"
du -sh "$out"/* 2>/dev/null

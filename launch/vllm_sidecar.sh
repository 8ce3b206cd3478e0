#!/bin/bash
# Serve a (trained) student with vLLM next to a command that uses it, e.g. collection with OEC:
#   launch/vllm_sidecar.sh outputs/runs/bc_32b/<run>/model -- python -m oec.collect +exp=oec_32b
# Starts `vllm serve MODEL` on 127.0.0.1, waits until /v1/models answers, runs the command with
# OPENAI_BASE_URL (http://127.0.0.1:PORT/v1), OPENAI_API_KEY and OEC_SERVED_MODEL set, and stops the
# server when the command ends (its exit status is the script's). MODEL is a folder written by
# oec.train (<run>/model) or a downloaded Hugging Face checkpoint. Env: PORT (8000), TP (tensor
# parallel size, 1), MAX_MODEL_LEN (32768), SERVED_NAME (student), VLLM_ARGS (extra vllm flags),
# STARTUP_TIMEOUT (seconds, 900). Needs the gpu extra: pip install 'oec[gpu]'.
set -euo pipefail

if [[ $# -lt 3 || "$2" != "--" ]]; then
  echo "usage: $0 MODEL_DIR -- COMMAND [ARGS...]" >&2
  exit 2
fi
model="$1"
shift 2
if [[ ! -f "${model}/config.json" ]]; then
  echo "error: ${model} is not a model folder (no config.json)" >&2
  exit 2
fi
port="${PORT:-8000}"
served="${SERVED_NAME:-student}"
log="$(mktemp -t vllm-XXXXXX.log)"

# shellcheck disable=SC2086
vllm serve "${model}" --host 127.0.0.1 --port "${port}" --served-model-name "${served}" \
  --tensor-parallel-size "${TP:-1}" --max-model-len "${MAX_MODEL_LEN:-32768}" --dtype auto \
  ${VLLM_ARGS:-} >"${log}" 2>&1 &
server=$!
trap 'kill "${server}" 2>/dev/null; wait "${server}" 2>/dev/null || true' EXIT

deadline=$((SECONDS + ${STARTUP_TIMEOUT:-900}))
until curl -sf "http://127.0.0.1:${port}/v1/models" >/dev/null; do
  if ! kill -0 "${server}" 2>/dev/null; then
    echo "error: vllm exited during start-up; its log (${log}) ends with:" >&2
    tail -n 30 "${log}" >&2
    exit 1
  fi
  if ((SECONDS > deadline)); then
    echo "error: vllm did not answer on port ${port} within ${STARTUP_TIMEOUT:-900} s (log: ${log})" >&2
    exit 1
  fi
  sleep 5
done
echo "vllm serves ${model} as '${served}' on http://127.0.0.1:${port}/v1 (log: ${log})" >&2

export OPENAI_BASE_URL="http://127.0.0.1:${port}/v1" OPENAI_API_KEY="${OPENAI_API_KEY:-EMPTY}" OEC_SERVED_MODEL="${served}"
status=0
"$@" || status=$?
exit "${status}"

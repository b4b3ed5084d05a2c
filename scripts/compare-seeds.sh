#!/usr/bin/env bash
# How a candidate training file changes the model, over seeds 1-3 (docs/classifier.md, how a
# data or rule change is chosen): trains the shipped model's data (scripts/model.sh's, with
# the UCI training half and the Korean phishing dataset's when found) without and with
# CANDIDATE.jsonl, seed by seed, and
# prints for each model the Korean test sets' spam and ham blocked and labelled, and, when
# SPAMFLOW_CHAT names the chatbot corpus's lines (scripts/chat-corpus.sh), how many of them
# it blocks. SPAMFLOW_SETS=N trains on hand-written sets 1..N only (to compare a set that
# is already shipped). Reads nothing of the UCI evaluation half.
#   SPAMFLOW_UCI=... [SPAMFLOW_CHAT=chat.jsonl] [SPAMFLOW_SETS=N] scripts/compare-seeds.sh CANDIDATE.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
candidate=${1:?usage: scripts/compare-seeds.sh CANDIDATE.jsonl}
[ -f "$candidate" ] || { echo "compare-seeds.sh: no file $candidate" >&2; exit 1; }
candidate=$(realpath "$candidate")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. scripts/training-data.sh
base=("${data[@]}")
tests=()
for f in operators/models/corpus/ko-test*.jsonl; do tests+=(--data "$f"); done
for seed in 1 2 3; do
  for side in without with; do
    d=("${base[@]}")
    [ "$side" = with ] && d+=(--data "$candidate")
    d+=("${real[@]}")
    model="$work/$side-$seed.sfm"
    $bin/spamflow train "${d[@]}" --seed "$seed" "${policy[@]}" --out "$model" > /dev/null 2>&1
    $bin/spamflow eval --model "$model" "${tests[@]}" --json 2> /dev/null > "$work/tests.json"
    if [ -n "${SPAMFLOW_CHAT:-}" ]; then
      $bin/spamflow eval --model "$model" --data "$SPAMFLOW_CHAT" --json 2> /dev/null > "$work/chat.json"
    else
      echo '{}' > "$work/chat.json"
    fi
    python3 - "$side" "$seed" "$model" "$work" <<'PY'
import hashlib, json, sys
side, seed, model, work = sys.argv[1:]
d = json.load(open(f"{work}/tests.json"))["decision"]
chat = json.load(open(f"{work}/chat.json")).get("decision")
spam = d["spam_blocked"] + d["spam_labelled"] + d["spam_allowed"]
ham = d["ham_blocked"] + d["ham_labelled"] + d["ham_allowed"]
line = (f"{side:7} seed {seed} {hashlib.sha256(open(model, 'rb').read()).hexdigest()[:8]}: "
        f"test spam {d['spam_blocked']} of {spam} blocked ({d['spam_labelled']} labelled), "
        f"test ham {d['ham_blocked']} of {ham} blocked ({d['ham_labelled']} labelled)")
if chat:
    line += f", chat lines blocked {chat['ham_blocked']}"
print(line, flush=True)
PY
  done
done

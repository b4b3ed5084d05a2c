#!/usr/bin/env bash
# How much of each Korean test set is a near copy of the training data (docs/classifier.md):
# a test line counts as one when it shares five or more runs of ten characters (spaces
# removed) with the shipped model's Korean training lines (the synthesizer's corpus, the
# rule pack's examples, the hand-written sets, the Korean phishing dataset's training half
# and the Korean spam reports' when found: SPAMFLOW_KOR, SPAMFLOW_KOSPAM). Prints the count
# per set, then scores the test lines that are not near copies with MODEL (default: the
# shipped model).
#   scripts/test-overlap.sh [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-operators/models/default.sfm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. scripts/training-data.sh
cat "$work/synth.jsonl" "$work/rules.jsonl" operators/models/corpus/ko-handwritten-*.jsonl ${kor_rows:+"$kor_rows"} ${kospam_rows:+"$kospam_rows"} > "$work/train.jsonl"
python3 - "$work" operators/models/corpus/ko-test*.jsonl <<'EOF'
import json, re, sys
work, sets = sys.argv[1], sys.argv[2:]
RUN, SHARED = 10, 5
def runs(text):
    k = re.sub(r"\s", "", text)
    return [hash(k[i:i + RUN]) for i in range(max(1, len(k) - RUN + 1))]
seen = set()
for line in open(f"{work}/train.jsonl", encoding="utf-8"):
    seen.update(runs(json.loads(line)["text"]))
near_all = lines_all = 0
with open(f"{work}/clean.jsonl", "w", encoding="utf-8") as clean:
    for name in sorted(sets):
        near = lines = 0
        for line in open(name, encoding="utf-8"):
            lines += 1
            if sum(r in seen for r in runs(json.loads(line)["text"])) >= SHARED:
                near += 1
            else:
                clean.write(line)
        print(f"{name}: {near} of {lines} lines are near copies of training lines")
        near_all += near
        lines_all += lines
print(f"all: {near_all} of {lines_all}")
EOF
echo "--- the test lines that are not near copies:"
$bin/spamflow eval --model "$model" --data "$work/clean.jsonl" 2>/dev/null

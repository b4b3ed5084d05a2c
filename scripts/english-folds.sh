#!/usr/bin/env bash
# The English block budget's yardstick (docs/classifier.md): trains as scripts/model.sh
# does, five times, each time holding out another random fifth of the UCI training half
# (each row's group set to "fold<k>:<text>"; the other data unchanged), and prints the
# held-out UCI spam blocked and ham blocked, summed over the five.
#   SPAMFLOW_UCI=path/to/SMSSpamCollection scripts/english-folds.sh [spamflow train options]
# e.g. --ham-block-budget 0.006. Reads only the UCI training half.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. scripts/training-data.sh
[ -n "$uci_rows" ] || { echo "english-folds.sh: no UCI SMS Spam Collection at $uci (set SPAMFLOW_UCI)" >&2; exit 1; }
mv "$uci_rows" "$work/uci.jsonl"
kor_data=()
[ -n "$kor_rows" ] && kor_data=(--data "$kor_rows")
for k in 0 1 2 3 4; do
  python3 -c '
import json, sys
k = sys.argv[1]
for line in sys.stdin:
    row = json.loads(line)
    row["group"] = "fold" + k + ":" + row["text"]
    print(json.dumps(row, ensure_ascii=False))
' "$k" < "$work/uci.jsonl" > "$work/uci-sms-train.jsonl"
  $bin/spamflow train "${data[@]}" --data "$work/uci-sms-train.jsonl" "${kor_data[@]}" --seed 1 \
    --policy-exclude-source synth --out "$work/model.sfm" --json "$@" 2>/dev/null > "$work/fold$k.json"
done
python3 - "$work" <<'PY'
import json, sys
spam = blocked = ham = ham_blocked = 0
for k in range(5):
    d = json.load(open(f"{sys.argv[1]}/fold{k}.json"))["by_source"]["uci-sms-train"]
    s = d["spam_blocked"] + d["spam_labelled"] + d["spam_allowed"]
    h = d["ham_blocked"] + d["ham_labelled"] + d["ham_allowed"]
    print(f"fold {k}: spam blocked {d['spam_blocked']} of {s}, ham blocked {d['ham_blocked']} of {h}")
    spam += s; blocked += d["spam_blocked"]; ham += h; ham_blocked += d["ham_blocked"]
print(f"all: spam blocked {blocked} of {spam} ({100 * blocked / spam:.1f} %), "
      f"ham blocked {ham_blocked} of {ham} ({100 * ham_blocked / ham:.2f} %)")
PY

#!/usr/bin/env bash
# A real corpus's yardstick on its training half (docs/classifier.md): trains as
# scripts/model.sh does, five times, each time holding out another random fifth of that
# corpus's training rows (each row's group set to "fold<k>:" and its text, or for the
# Korean phishing dataset and the spam reports its campaign, which stays whole; the other
# data unchanged), and
# prints the held-out rows' spam blocked and ham
# blocked, summed over the five.
#   uci: the UCI training half, English (SPAMFLOW_UCI=path/to/SMSSpamCollection)
#   kor: the Korean phishing dataset's training half (SPAMFLOW_KOR=path/to/KOR_phishing_data_raw.csv)
#   kospam: the Korean spam reports' training half (SPAMFLOW_KOSPAM=path/to/lgaidataset_all_classified.csv,
#     with SPAMFLOW_KOR)
#   scripts/folds.sh uci|kor|kospam [spamflow train options]
# e.g. --ham-block-budget 0.006. Reads neither corpus's evaluation half.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${1:?usage: scripts/folds.sh uci|kor|kospam [spamflow train options]}
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. scripts/training-data.sh
case "$corpus" in
  uci) rows=$uci_rows source=uci-sms-train key=text ;;
  kor) rows=$kor_rows source=kor-phishing-train key=group ;;
  kospam) rows=$kospam_rows source=kospam-train key=group ;;
  *) echo "folds.sh: the corpus is uci, kor or kospam, not $corpus" >&2; exit 2 ;;
esac
[ -n "$rows" ] || { echo "folds.sh: no $corpus corpus to hold out (above)" >&2; exit 1; }
mv "$rows" "$work/rows.jsonl"
for k in 0 1 2 3 4; do
  python3 -c '
import json, sys
k, key = sys.argv[1:]
for line in sys.stdin:
    row = json.loads(line)
    row["group"] = "fold" + k + ":" + row[key]
    print(json.dumps(row, ensure_ascii=False))
' "$k" "$key" < "$work/rows.jsonl" > "$rows"
  $bin/spamflow train "${data[@]}" "${real[@]}" --seed 1 \
    "${policy[@]}" --out "$work/model.sfm" --json "$@" 2>/dev/null > "$work/fold$k.json"
done
python3 - "$work" "$source" <<'PY'
import json, sys
work, source = sys.argv[1:]
spam = blocked = ham = ham_blocked = 0
for k in range(5):
    d = json.load(open(f"{work}/fold{k}.json"))["by_source"][source]
    s = d["spam_blocked"] + d["spam_labelled"] + d["spam_allowed"]
    h = d["ham_blocked"] + d["ham_labelled"] + d["ham_allowed"]
    print(f"fold {k}: spam blocked {d['spam_blocked']} of {s}, ham blocked {d['ham_blocked']} of {h}")
    spam += s; blocked += d["spam_blocked"]; ham += h; ham_blocked += d["ham_blocked"]
print(f"all: spam blocked {blocked} of {spam} ({100 * blocked / spam:.1f} %), "
      f"ham blocked {ham_blocked} of {ham} ({100 * ham_blocked / ham:.2f} %)")
PY

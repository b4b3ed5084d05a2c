#!/usr/bin/env bash
# Rebuilds the shipped classifier model (operators/models/default.sfm) from its sources:
#   1. the seeded Korean corpus (spamflow-loadtest corpus --seed 11 --count 60000);
#   2. the built-in rule pack's examples (spamflow rules examples);
#   3. the hand-written Korean lines in operators/models/corpus/ko-handwritten-*.jsonl (each line
#      carries its weight: 20, set 14 5);
#   4. the training half of the UCI SMS Spam Collection, when the file is found at
#      $SPAMFLOW_UCI or ../shared/corpora/SMSSpamCollection (checked by SHA-256);
#   5. the training half of the Korean phishing dataset (scripts/kor-corpus.sh), when its CSV
#      is found at $SPAMFLOW_KOR or ../shared/corpora/KOR_phishing_data_raw.csv (checked by
#      SHA-256);
#   6. the training half of the Korean spam reports (scripts/kospam-corpus.sh), when their CSV
#      is found at $SPAMFLOW_KOSPAM or ../shared/corpora/lgaidataset_all_classified.csv
#      (checked by SHA-256) and the Korean phishing dataset is found too,
# then `spamflow train --seed 1` with the policy fitted without the synthesizer's and the spam
# reports' lines, and `spamflow eval` on the Korean test sets. Same sources,
# same model bytes. See docs/classifier.md.
#   scripts/model.sh [OUT [more spamflow train options]]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-operators/models/default.sfm}
shift || true   # the rest: more `spamflow train` options, for a candidate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
. scripts/training-data.sh
# The policy is fitted on the hand-written, rule, UCI and Korean phishing lines only (docs/classifier.md).
$bin/spamflow train "${data[@]}" "${real[@]}" --seed 1 "${policy[@]}" --out "$out" "$@"
echo "--- Korean test sets (never trained on):"
tests=()
for f in operators/models/corpus/ko-test*.jsonl; do tests+=(--data "$f"); done
$bin/spamflow eval --model "$out" "${tests[@]}"

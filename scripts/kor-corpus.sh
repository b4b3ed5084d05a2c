#!/usr/bin/env bash
# Writes one half of the Korean phishing dataset of Kim, Park, Ahn and Lee (2024; public
# repository Ez-Sy01/KOR_phishing_Detect-Dataset, data/KOR_phishing_data_raw.zip, unzipped:
# KOR_phishing_data_raw.csv) as labelled JSON lines: real Korean smishing, family lures and
# illegal loan ads of 2019-2021 (class 1, spam) and Korean web comments and news snippets
# (class 0, ham). docs/classifier.md says what it is and how it is used.
#   scripts/kor-corpus.sh KOR_phishing_data_raw.csv train|eval > kor-train.jsonl
# The halves: spam texts that are near copies of each other (they share runs of ten
# characters, spaces removed, covering half of the shorter text's runs) are one campaign, and
# a campaign goes whole to the half of its smallest text; any other text goes to a half by
# itself. A text whose SHA-256 (UTF-8) starts with 0-7 is in the training half, 8-f in the
# evaluation half, which nothing trains, tunes or picks a threshold on. The training half is
# written as the shipped model reads it: each spam line at weight 15, and one ham line in
# eight (those whose SHA-256's second hex digit is 0 or 8), as the web comments would
# otherwise outnumber the SMS ham the block threshold is set on (docs/classifier.md).
set -euo pipefail
csv=${1:?usage: scripts/kor-corpus.sh KOR_phishing_data_raw.csv train|eval}
half=${2:?usage: scripts/kor-corpus.sh KOR_phishing_data_raw.csv train|eval}
case "$half" in train|eval) ;; *) echo "kor-corpus.sh: the half is train or eval, not $half" >&2; exit 2;; esac
want=8e69ef6ac02ab3c2ef48d76cae368ca6165e83e868ffa676509434356e3b9357
got=$(sha256sum "$csv" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "kor-corpus.sh: $csv has SHA-256 $got, not that of the known copy ($want)" >&2; exit 1; }
PYTHONPATH="$(dirname "$0")" python3 - "$csv" "$half" <<'PY'
import collections, csv, hashlib, json, sys
import campaigns
path, want = sys.argv[1:]
rows, seen = [], set()
with open(path, encoding="utf-8-sig", newline="") as f:
    for row in csv.DictReader(f):
        text = row["content"].strip()
        if text and text not in seen:
            seen.add(text)
            rows.append((text, "spam" if row["class"] == "1" else "ham"))

spam = [t for t, label in rows if label == "spam"]
key = campaigns.campaign_keys(spam)

def half(text):
    return "train" if hashlib.sha256(text.encode()).hexdigest()[0] in "01234567" else "eval"

counts = collections.Counter()
for text, label in rows:
    if half(key.get(text, text)) != want:
        continue
    row = {"text": text, "label": label, "language": "ko", "source": f"kor-phishing-{want}",
           "group": f"kor:{key.get(text, text)}"}
    if want == "train":
        if label == "spam":
            row["weight"] = 15
        elif hashlib.sha256(text.encode()).hexdigest()[1] not in "08":
            continue
    counts[label] += 1
    print(json.dumps(row, ensure_ascii=False))
print(f"kor-corpus.sh: {want} half: {counts['spam']} spam ({len(set(key.values()))} campaigns in both halves), "
      f"{counts['ham']} ham", file=sys.stderr)
PY

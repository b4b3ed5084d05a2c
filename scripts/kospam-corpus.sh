#!/usr/bin/env bash
# Writes one half of a collection of real Korean spam that people reported, as labelled JSON
# lines: lgaidataset_all_classified.csv of the public repository j2h00n/smishing_ai (path
# smishingai/smishing_ai_final/smishing_ai_v2 backup/; no licence stated, origin not stated;
# docs/classifier.md says what it is and how it is used). Class 2 rows are spam: illegal
# gambling and adult ads, stock and coin rooms, loan ads and smishing of 2020-2023, their
# digits masked as `*`. Class 1 rows are the Korean phishing dataset's web comments and are
# not read; class 3 rows are delivery notices written from about ten templates (ham).
#   scripts/kospam-corpus.sh lgaidataset_all_classified.csv KOR_phishing_data_raw.csv train|eval [--cleaned]
# Left out: rows without Hangul (reported sign-in codes and exchanges' notices in English,
# not spam), and every row whose text, spaces removed and digits read as `*`, is a text of
# the Korean phishing dataset or a near copy (below) of one of its spam (619 of its spam are in
# the collection; that dataset has halves of its own, scripts/kor-corpus.sh). The halves are made as that script makes them: texts
# that are near copies of each other (runs of ten characters, spaces removed, covering half
# of the shorter text's runs) are one campaign, or one template, and go whole to the half
# of their smallest text's SHA-256 (0-7 training, 8-f evaluation), which nothing trains,
# tunes or picks a threshold on. The evaluation half is written as collected; the training
# half, and the evaluation half with --cleaned, with each `*` as `0` (the features read every
# digit alike) and each `?` as a space: the file lost every emoji to a `?` (`빅토리???????`),
# and read as question marks they taught the model that runs of them are spam.
set -euo pipefail
usage="usage: scripts/kospam-corpus.sh lgaidataset_all_classified.csv KOR_phishing_data_raw.csv train|eval [--cleaned]"
csv=${1:?$usage}
kor=${2:?$usage}
half=${3:?$usage}
cleaned=${4:-}
case "$half" in train|eval) ;; *) echo "kospam-corpus.sh: the half is train or eval, not $half" >&2; exit 2;; esac
case "$cleaned" in ''|--cleaned) ;; *) echo "$usage" >&2; exit 2;; esac
want=2504706f5cddcdf180fa4955cd18f02c357feaed383191b300b46cbdbcf076ce
got=$(sha256sum "$csv" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "kospam-corpus.sh: $csv has SHA-256 $got, not that of the known copy ($want)" >&2; exit 1; }
want_kor=8e69ef6ac02ab3c2ef48d76cae368ca6165e83e868ffa676509434356e3b9357
got=$(sha256sum "$kor" | cut -d' ' -f1)
[ "$got" = "$want_kor" ] || { echo "kospam-corpus.sh: $kor has SHA-256 $got, not that of the Korean phishing dataset ($want_kor)" >&2; exit 1; }
PYTHONPATH="$(dirname "$0")" python3 - "$csv" "$kor" "$half" "$cleaned" <<'PY'
import collections, csv, hashlib, json, re, sys
import campaigns
path, kor_path, want, cleaned = sys.argv[1:]

def masked(text):
    return re.sub(r"[0-9*]", "*", re.sub(r"\s", "", text))

with open(kor_path, encoding="utf-8-sig", newline="") as f:
    kor_rows = list(csv.DictReader(f))
kor = {masked(row["content"]) for row in kor_rows}
kor_spam_runs = [campaigns.runs(row["content"]) for row in kor_rows if row["class"] == "1"]
kor_by_run = campaigns.index(kor_spam_runs)

def near_kor_spam(text):
    return bool(campaigns.near_copies(campaigns.runs(text), kor_spam_runs, kor_by_run))

hangul = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")
rows, seen, left_out = [], set(), collections.Counter()
with open(path, encoding="utf-8", errors="replace", newline="") as f:
    for row in csv.DictReader(f):
        label = {"2": "spam", "3": "ham"}.get(row["class"])
        text = row["content"].strip()
        if label is None or not text or masked(text) in seen:
            continue
        seen.add(masked(text))
        if masked(text) in kor:
            left_out["in the Korean phishing dataset"] += 1
        elif near_kor_spam(text):
            left_out["near copies of its spam"] += 1
        elif not hangul.search(text):
            left_out["without Hangul"] += 1
        else:
            rows.append((text, label))

key = {}
for label in ("spam", "ham"):
    key.update(campaigns.campaign_keys([t for t, l in rows if l == label]))

counts, named = collections.Counter(), collections.defaultdict(set)
for text, label in rows:
    k = key[text]
    if ("train" if hashlib.sha256(k.encode()).hexdigest()[0] in "01234567" else "eval") != want:
        continue
    counts[label] += 1
    named[label].add(k)
    out = re.sub(r" +", " ", text.replace("*", "0").replace("?", " ")).strip() if cleaned or want == "train" else text
    print(json.dumps({"text": out, "label": label, "language": "ko", "source": f"kospam-{want}",
                      "group": f"kospam:{k}"}, ensure_ascii=False))
print(f"kospam-corpus.sh: {want} half: {counts['spam']} spam in {len(named['spam'])} campaigns, "
      f"{counts['ham']} ham in {len(named['ham'])} templates; left out: "
      + ", ".join(f"{n} {why}" for why, n in sorted(left_out.items())), file=sys.stderr)
PY

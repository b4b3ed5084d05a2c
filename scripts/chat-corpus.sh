#!/usr/bin/env bash
# Writes the Korean chatbot corpus (songys/Chatbot_data, ChatbotData.csv, MIT licence) as
# labelled ham JSON lines, for measuring how much everyday chat written by other hands a
# model blocks (docs/classifier.md, "Korean ham"). Each distinct question and answer is one
# line; lines that are also in a Korean test set (ignoring spaces and punctuation) are left
# out. Nothing trains on it.
#   scripts/chat-corpus.sh path/to/ChatbotData.csv > chat.jsonl
#   target/release/spamflow eval --data chat.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
csv=${1:?usage: scripts/chat-corpus.sh ChatbotData.csv}
want=287eb129695b577321c80ad397bb3c2279164d4ca577874d129fd3db5b30afe2
got=$(sha256sum "$csv" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "chat-corpus.sh: $csv has SHA-256 $got, not that of the known copy ($want)" >&2; exit 1; }
python3 - "$csv" operators/models/corpus/ko-test*.jsonl <<'PY'
import csv, json, re, sys
key = lambda t: re.sub(r"[\W_]", "", t)
tests = {key(json.loads(l)["text"]) for f in sys.argv[2:] for l in open(f, encoding="utf-8")}
seen, left_out = set(), 0
with open(sys.argv[1], encoding="utf-8", newline="") as f:
    for row in csv.DictReader(f):
        for text in (row["Q"].strip(), row["A"].strip()):
            if not text or text in seen:
                continue
            seen.add(text)
            if key(text) in tests:
                left_out += 1
                continue
            print(json.dumps({"text": text, "label": "ham", "language": "ko", "source": "ko-chatbot"}, ensure_ascii=False))
print(f"chat-corpus.sh: {len(seen)} distinct lines, {left_out} left out as test lines", file=sys.stderr)
PY

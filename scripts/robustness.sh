#!/usr/bin/env bash
# What a sender can add to a message without changing what it is (docs/classifier.md):
#   1. a legitimate link appended to each ham of ko-test..ko-test-7 (a delivery company's
#      tracking page to notices, a video to chat);
#   2. the same links appended to each spam of ko-test..ko-test-8;
#   3. each of those spam padded with one of ten everyday chat lines written for this
#      (in no training data), before or after it in turn;
#   4. each of those spam with a line close to the synthesizer's chat appended.
# Prints `spamflow eval`'s confusion matrix for each.
#   scripts/robustness.sh [MODEL]   (default: the shipped model)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-operators/models/default.sfm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q -p spamflow-pipeline --bin spamflow
python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
sets = ["ko-test.jsonl"] + [f"ko-test-{i}.jsonl" for i in range(2, 9)]
ham, spam = [], []
for n, name in enumerate(sets):
    for line in open(f"operators/models/corpus/{name}", encoding="utf-8"):
        row = json.loads(line)
        if row["label"] == "ham" and n < 7:
            ham.append(row)
        elif row["label"] == "spam":
            spam.append(row)
notice_link = "https://www.cjlogistics.com/ko/tool/parcel/tracking"
chat_link = "https://youtu.be/x7Kq9aB"
chat = [
    "주말에 부모님 댁에 다녀왔어요", "점심은 김치찌개 먹었어", "이번 겨울은 유난히 춥네요",
    "아이가 오늘 처음 걸음마를 뗐어요", "퇴근길에 붕어빵 사 갈게", "어제 본 드라마 너무 재밌더라",
    "고양이가 또 화분을 엎었어", "다음 달에 이사 가는 거 알지?", "헬스장 등록했는데 작심삼일일 듯",
    "눈 와서 길 미끄러우니 조심해",
]
def write(name, rows):
    with open(f"{work}/{name}.jsonl", "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
write("ham-with-link", [
    {**r, "text": r["text"] + " " + (notice_link if r["text"].startswith("[") else chat_link)}
    for r in ham])
write("spam-with-link", [
    {**r, "text": r["text"] + " " + (notice_link if i % 2 == 0 else chat_link)}
    for i, r in enumerate(spam)])
write("spam-padded", [
    {**r, "text": f"{r['text']} {chat[i % 10]}" if i % 2 == 0 else f"{chat[i % 10]} {r['text']}"}
    for i, r in enumerate(spam)])
write("spam-padded-synthetic", [
    {**r, "text": r["text"] + " 오늘 저녁에 비 온대 우산 챙겨"} for r in spam])
EOF
for f in ham-with-link spam-with-link spam-padded spam-padded-synthetic; do
  echo "--- $f"
  target/release/spamflow eval --model "$model" --data "$work/$f.jsonl" 2>/dev/null |
    grep -E '^\| (spam|ham) ' | grep -v '| 0 | 0 | 0 |'
done

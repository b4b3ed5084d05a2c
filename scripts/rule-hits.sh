#!/usr/bin/env bash
# Which rules of a pack fire on labelled lines, and on how many spam and ham of each source
# (docs/rules.md, "Checking a rule against the corpora"): each line goes through
# `spamflow backtest --rules DIR` as a domestic message with the classifier and the
# per-sender operators off, and every pattern reason is counted. With --show RULE, each
# line that rule fires on is printed too: message texts are printed only then, for the
# person writing the rule.
#   scripts/rule-hits.sh DIR FILE.jsonl... [--show RULE]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: scripts/rule-hits.sh DIR FILE.jsonl... [--show RULE]" >&2; exit 2; }
cargo build --release -q -p spamflow-pipeline --bin spamflow
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" "$@" <<'PY'
import collections, json, os, subprocess, sys
work, args = sys.argv[1], sys.argv[2:]
show = None
if "--show" in args:
    i = args.index("--show")
    if i + 1 >= len(args):
        sys.exit("rule-hits.sh: --show needs a rule id")
    show = args[i + 1]
    del args[i:i + 2]
rules, files = args[0], args[1:]
rows = []
with open(f"{work}/events.jsonl", "w", encoding="utf-8") as out:
    for f in files:
        for n, line in enumerate(open(f, encoding="utf-8"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, label = row["text"], row["label"]
            except (ValueError, KeyError) as e:
                sys.exit(f"rule-hits.sh: {f}:{n}: not a labelled line ({e})")
            i = len(rows)
            rows.append((label, row.get("source") or os.path.basename(f), text))
            out.write(json.dumps({
                "schema_version": 1, "kind": "sms", "message_id": f"hits-{i}",
                "sender": "01012345678", "recipient": "+821000000001",
                "submitted_at": "2026-03-01T09:00:00Z",
                "origin": {"route": "domestic", "smsc": "rule-hits"}, "text": text,
            }, ensure_ascii=False) + "\n")
# Only the rules count: no classifier, and no per-sender state for one sender's many lines.
env = dict(os.environ, SPAMFLOW_CLASSIFIER__ENABLED="false",
           SPAMFLOW_VELOCITY__ENABLED="false", SPAMFLOW_THROTTLE__ENABLED="false")
subprocess.run(["target/release/spamflow", "backtest", "--events", f"{work}/events.jsonl",
                "--out", f"{work}/verdicts.jsonl", "--rules", rules],
               env=env, check=True, stdout=subprocess.DEVNULL)
hits = collections.defaultdict(lambda: collections.Counter())
for line in open(f"{work}/verdicts.jsonl", encoding="utf-8"):
    v = json.loads(line)
    label, source, text = rows[int(v["message_id"].split("-")[1])]
    for code in sorted({r["code"] for r in v["reasons"] if r["operator"] == "pattern"}):
        hits[code][(label, source)] += 1
        if code == show:
            print(f"{label}\t{source}\t{text}")
print(f"{len(rows)} lines; rule: spam hits, ham hits (ham by source)")
for code in sorted(hits):
    c = hits[code]
    spam = sum(n for (l, _), n in c.items() if l == "spam")
    ham = {s: n for (l, s), n in c.items() if l != "spam"}
    by = ", ".join(f"{s} {n}" for s, n in sorted(ham.items()))
    print(f"{code:40s} spam {spam:6d}  ham {sum(ham.values()):6d}" + (f"  ({by})" if by else ""))
PY

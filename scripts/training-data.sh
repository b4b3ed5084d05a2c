# Sourced by scripts/model.sh, folds.sh, test-overlap.sh and compare-seeds.sh (from
# the repository root, with $work set): builds the binaries, writes the shipped model's
# training data but the UCI half into $work, and sets `bin` and `data` (the --data options,
# in the shipped model's order: the order moves the shuffles, so the same order gives the
# same model bytes). SPAMFLOW_SETS=N takes hand-written sets 1..N only (default: every
# ko-handwritten-N.jsonl there is). The real corpora, which are not in the repository, come
# after those: the UCI training half, when the collection is at `uci` ($SPAMFLOW_UCI or
# ../shared/corpora/SMSSpamCollection), is written to `uci_rows`
# ($work/uci-sms-train.jsonl), and the Korean phishing dataset's, when its CSV is at `kor`
# ($SPAMFLOW_KOR or ../shared/corpora/KOR_phishing_data_raw.csv), to `kor_rows`
# ($work/kor-phishing-train.jsonl, scripts/kor-corpus.sh), and the Korean spam reports', when
# their CSV is at `kospam` ($SPAMFLOW_KOSPAM or ../shared/corpora/lgaidataset_all_classified.csv)
# and the Korean phishing dataset too (whose texts it leaves out), to `kospam_rows`
# ($work/kospam-train.jsonl, scripts/kospam-corpus.sh); each is empty, with a line on
# stderr, when its file is not there. `real` holds the --data options of those written, and
# `policy` the sources that train the classifier but not the policy.
cargo build --release -q -p spamflow-pipeline --bin spamflow -p spamflow-loadtest --bin spamflow-loadtest
bin=target/release
$bin/spamflow-loadtest corpus --seed 11 --count 60000 > "$work/synth.jsonl"
$bin/spamflow rules examples > "$work/rules.jsonl"
data=(--data "$work/synth.jsonl" --data "$work/rules.jsonl")
sets=$(ls operators/models/corpus/ko-handwritten-*.jsonl | wc -l)
for i in $(seq 1 "${SPAMFLOW_SETS:-$sets}"); do
  data+=(--data "operators/models/corpus/ko-handwritten-$i.jsonl")
done
uci=${SPAMFLOW_UCI:-../shared/corpora/SMSSpamCollection}
uci_rows= kor_rows= real=()
if [ -f "$uci" ]; then
  uci_rows="$work/uci-sms-train.jsonl"
  $bin/spamflow-loadtest uci --in "$uci" --half train > "$uci_rows"
  real+=(--data "$uci_rows")
else
  echo "$(basename "$0"): no UCI SMS Spam Collection at $uci: training without English SMS (set SPAMFLOW_UCI)" >&2
fi
kor=${SPAMFLOW_KOR:-../shared/corpora/KOR_phishing_data_raw.csv}
if [ -f "$kor" ]; then
  kor_rows="$work/kor-phishing-train.jsonl"
  scripts/kor-corpus.sh "$kor" train > "$kor_rows"
  real+=(--data "$kor_rows")
else
  echo "$(basename "$0"): no Korean phishing dataset at $kor: training without real Korean smishing (set SPAMFLOW_KOR)" >&2
fi
kospam=${SPAMFLOW_KOSPAM:-../shared/corpora/lgaidataset_all_classified.csv}
kospam_rows=
if [ -f "$kospam" ] && [ -n "$kor_rows" ]; then
  kospam_rows="$work/kospam-train.jsonl"
  scripts/kospam-corpus.sh "$kospam" "$kor" train > "$kospam_rows"
  real+=(--data "$kospam_rows")
else
  echo "$(basename "$0"): no Korean spam reports at $kospam, or no Korean phishing dataset to leave out of them: training without them (set SPAMFLOW_KOSPAM and SPAMFLOW_KOR)" >&2
fi
# The synthesizer's lines and the spam reports' (whose ham is a few delivery templates)
# train the classifier; the policy is fitted on the rest (docs/classifier.md).
policy=(--policy-exclude-source synth --policy-exclude-source kospam-train)

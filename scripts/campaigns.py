"""Near copies for the real corpora's halves (scripts/kor-corpus.sh, scripts/kospam-corpus.sh).

Two texts are near copies when the runs of ten characters (spaces removed) they share
cover half of the shorter one's runs. Near copies, and near copies of those, are one
campaign, which goes whole to one half.
"""
import collections
import re


def runs(text):
    """The text's runs of ten characters, spaces removed."""
    k = re.sub(r"\s", "", text)
    return {k[i:i + 10] for i in range(max(1, len(k) - 9))}


def index(texts_runs):
    """Each run, with the texts (by position) that have it."""
    by_run = collections.defaultdict(list)
    for i, r in enumerate(texts_runs):
        for x in r:
            by_run[x].append(i)
    return by_run


def near_copies(r, texts_runs, by_run, skip=None):
    """The positions of the texts whose runs `r` nearly copies (all but `skip`)."""
    shared = collections.Counter(j for x in r for j in by_run.get(x, ()) if j != skip)
    return [j for j, n in shared.items() if 2 * n >= min(len(r), len(texts_runs[j]))]


def campaign_keys(texts):
    """Each text's campaign, named by the campaign's smallest text."""
    texts_runs = [runs(t) for t in texts]
    by_run = index(texts_runs)
    parent = list(range(len(texts)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, r in enumerate(texts_runs):
        for j in near_copies(r, texts_runs, by_run, skip=i):
            parent[root(i)] = root(j)
    campaigns = collections.defaultdict(list)
    for i, t in enumerate(texts):
        campaigns[root(i)].append(t)
    return {t: min(members) for members in campaigns.values() for t in members}

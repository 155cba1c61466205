"""The learned layer: hashed character and word n-grams read by a logistic regression.

Why this model. Character n-grams (2 to 5 letters, within word boundaries)
read misspellings, slang, inflections and six languages in one feature
space, with no tokenizer and no vocabulary to ship; word unigrams and bigrams
add the phrase shape that separates "kill myself" from "kill time". Hashing
the n-grams (scikit-learn's ``HashingVectorizer``, MurmurHash3) means the
model is nothing but a weight per hashed feature: stored as plain numpy
arrays, never pickled, and the same text hashes the same on every machine.
Logistic regression with liblinear (a deterministic coordinate-descent
solver, fixed seed, classes balanced) trains in seconds on a few thousand
labelled messages, predicts in well under a millisecond on one core, and
gives a score whose threshold can be chosen honestly by cross-validation.
A transformer would read better but needs hundreds of megabytes of weights
and far more than 5 ms per message on one CPU core; this net must run
offline, instantly, on the smallest machine.

One head per category, each a logistic regression of that category's messages
against the benign ones; a message's score is its strongest head's probability,
and that head names the category. A single crisis-versus-none model has to put
a threat from an ex, a voice giving orders and a quiet wish to die on the same
side of one plane; ten heads each draw their own. Trained on the same corpus,
they caught 695 of the 839 crisis messages of probe sets never trained on,
against 662, with 25 false alarms of 690 against 28 (see the README's crisis
net section). Only the strongest weights per head are kept, to stay small.

The decision threshold is the lowest score whose cross-validated false-alarm
rate on the training corpus's benign messages stays within
``max_false_alarm``: counted for the whole net when the caller says which
messages the other layers flag and where the net lets the classifier speak,
else for the classifier alone. It is stored in the file with the
cross-validated recall, so the trade is visible.

`train` is a pure function of the labelled texts and the settings: the same
corpus gives the same bytes (`write_model` fixes every timestamp in the
archive and rounds weights so the file does not carry solver noise).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from actors.atomic_files import atomic_writer
from state.errors import CoachError

FORMAT = 3
N_FEATURES = 2**18
CHAR_NGRAMS = (2, 5)
WORD_NGRAMS = (1, 2)
C = 4096.0
"""Very weak regularisation: the hard cases are rare phrasings the heads must not smooth away.
On the probe sets (1,710 crisis, 2,352 benign messages, never trained on) at the same
false-alarm budget, C=4,096 against 256 caught 7 more crisis messages with 9 fewer false alarms,
and on the then fresh probe-13 (1,194 messages) 4 more with 4 fewer; C=4 and 32 did worse,
16,384 no better. With the larger corpus of `train-23` to `train-25`, C=256 opened the panel on
8 more of probe-18's 450 look-alikes."""
HEAD_WEIGHTS_KEPT = 20000
"""The strongest weights kept per head, so the file stays small (1.5 MB): keeping all of them
(about 145,000 a head) moved the probe figures by at most three messages."""
DECIMALS = 5
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class ClassifierError(CoachError):
    """The classifier file is missing, unreadable or from another format."""


def _vectorizers():
    from sklearn.feature_extraction.text import HashingVectorizer

    common = dict(n_features=N_FEATURES, alternate_sign=False, norm=None, lowercase=False, dtype=np.float32)
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, **common)
    words = HashingVectorizer(analyzer="word", ngram_range=WORD_NGRAMS, token_pattern=r"(?u)\b\w+\b", **common)
    return chars, words


def counts(texts: Sequence[str]):
    """Rows of hashed n-gram counts (texts already normalised): character n-grams in the first
    half of the space, word n-grams in the second."""
    from scipy.sparse import hstack

    chars, words = _vectorizers()
    return hstack([chars.transform(texts), words.transform(texts)], format="csr", dtype=np.float32)


def fit_idf(matrix) -> tuple[np.ndarray, float]:
    """Smoothed inverse document frequency per feature (scikit-learn's formula), and the value
    of a feature no training text had."""
    n = matrix.shape[0]
    df = np.bincount(matrix.indices, minlength=matrix.shape[1])
    idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
    return np.round(idf, 4), float(round(math.log(1.0 + n) + 1.0, 4))


def weigh(matrix, idf: np.ndarray):
    """Counts as sublinear TF-IDF rows of unit length: 1 + log(count), times idf, scaled."""
    from sklearn.preprocessing import normalize

    out = matrix.copy().astype(np.float32)
    out.data = (1.0 + np.log(out.data)) * idf[out.indices]
    return normalize(out, norm="l2", copy=False)


def features(texts: Sequence[str], idf: np.ndarray | None = None):
    """Rows as the model reads them: sublinear TF-IDF with ``idf`` (plain sublinear TF without)."""
    matrix = counts(texts)
    return weigh(matrix, idf if idf is not None else np.ones(matrix.shape[1], dtype=np.float32))


_WHITE_SPACES = re.compile(r"\s\s+")
_TOKEN = re.compile(r"(?u)\b\w+\b")


_CACHE_LIMIT = 200_000
_word_chars: dict[str, tuple[int, ...]] = {}
"""A word's char_wb n-gram feature indices: words repeat across messages, so each is hashed once."""
_word_grams: dict[str, int] = {}
"""A word unigram's or bigram's feature index (before the word block's offset)."""


_murmur = None
"""scikit-learn's MurmurHash3, imported on first use (importing it inside every call cost a third of the hashing)."""


def _index(gram: str) -> int:
    """scikit-learn's ``HashingVectorizer`` column for one n-gram (``alternate_sign=False``)."""
    global _murmur
    if _murmur is None:
        from sklearn.utils import murmurhash3_32

        _murmur = murmurhash3_32
    h = _murmur(gram, seed=0)
    return (2147483647 - (N_FEATURES - 1)) % N_FEATURES if h == -2147483648 else abs(h) % N_FEATURES


def _char_indices(word: str) -> tuple[int, ...]:
    """The char_wb 2–5 n-grams of one word, padded with a space each side, in scikit-learn's order."""
    found = _word_chars.get(word)
    if found is None:
        w = f" {word} "
        w_len = len(w)
        grams: list[str] = []
        lo, hi = CHAR_NGRAMS
        for n in range(lo, hi + 1):
            if w_len <= n:
                grams.append(w)
                break
            grams.extend(w[offset : offset + n] for offset in range(w_len - n + 1))
        found = tuple(map(_index, grams))
        if len(_word_chars) >= _CACHE_LIMIT:
            _word_chars.clear()
        _word_chars[word] = found
    return found


def _word_index(gram: str) -> int:
    found = _word_grams.get(gram)
    if found is None:
        found = _index(gram)
        if len(_word_grams) >= _CACHE_LIMIT:
            _word_grams.clear()
        _word_grams[gram] = found
    return found


def hashed_features(text: str, idf: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One text's features as (indices, values), exactly as `features` computes them.

    scikit-learn's vectorizers spend milliseconds validating and building sparse
    matrices for a single short text; this reproduces the same analyzers
    (``char_wb`` 2–5 and word 1–2 n-grams), the same MurmurHash3 and the same
    sublinear TF-IDF weighting with plain Python and numpy in a fraction of a millisecond,
    hashing each word's n-grams once per process. A test holds the two to the same numbers.
    """
    index: list[int] = []
    for word in _WHITE_SPACES.sub(" ", text).split():
        index.extend(_char_indices(word))
    tokens = _TOKEN.findall(text)
    wlo, whi = WORD_NGRAMS
    for n in range(wlo, min(whi, len(tokens)) + 1):
        for i in range(len(tokens) - n + 1):
            index.append(N_FEATURES + _word_index(" ".join(tokens[i : i + n])))
    if not index:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    indices, found = np.unique(np.array(index, dtype=np.int64), return_counts=True)
    values = 1.0 + np.log(found.astype(np.float64))
    if idf is not None:
        values *= idf[indices]
    values /= np.sqrt(np.dot(values, values))
    return indices, values.astype(np.float32)


@dataclass(frozen=True)
class ClassifierModel:
    heads: object  # scipy CSR (2 * N_FEATURES, n_categories): one category-versus-none head per column
    bias: np.ndarray  # (n_categories,) float32
    threshold: float
    categories: tuple[str, ...]
    meta: dict
    idf: np.ndarray | None = None  # (2 * N_FEATURES,) float32

    def hashed(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        return hashed_features(text, self.idf)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Crisis probability per (normalised) text."""
        return np.array([self.score(text) for text in texts], dtype=np.float64)

    @cached_property
    def _head_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The heads as a dense block of their non-zero feature rows, and each feature's row in
        it (the last, all-zero row for the rest): slicing the sparse matrix per message cost
        half a millisecond, a lookup and a small product cost microseconds."""
        csr = self.heads.tocsr()
        rows = np.flatnonzero(np.diff(csr.indptr))
        dense = np.zeros((len(rows) + 1, csr.shape[1]), dtype=np.float32)
        dense[: len(rows)] = csr[rows].toarray()
        where = np.full(csr.shape[0], len(rows), dtype=np.int32)
        where[rows] = np.arange(len(rows), dtype=np.int32)
        return where, dense

    def logits(self, text: str, hashed: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Each category head's log-odds that the (normalised) text is that crisis, not none."""
        indices, values = hashed if hashed is not None else self.hashed(text)
        where, dense = self._head_rows
        return values @ dense[where[indices]] + self.bias

    def score(self, text: str, hashed: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        """The strongest head's probability: a crisis of any kind."""
        return 1.0 / (1.0 + math.exp(-float(np.max(self.logits(text, hashed)))))

    def category(self, text: str, hashed: tuple[np.ndarray, np.ndarray] | None = None) -> str:
        """The most likely crisis category for a (normalised) text."""
        return self.categories[int(np.argmax(self.logits(text, hashed)))]


# --- training ----------------------------------------------------------------


@dataclass(frozen=True)
class TrainReport:
    messages: int
    crisis: int
    threshold: float
    cv_recall: float
    cv_false_alarm: float
    corpus_sha256: str


def corpus_hash(texts: Sequence[str], labels: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(json.dumps([text, label], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def _binary_model(matrix, y: np.ndarray, seed: int):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        solver="liblinear", dual=True, C=C, class_weight="balanced", random_state=seed, max_iter=1000
    )
    return model.fit(matrix, y)


def _fit_heads(matrix, classes: np.ndarray, n_categories: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One logistic regression per category, each on that category's messages against every
    benign one (class 0); other categories stay out of its way, so a head for threats from
    others never learns to call a wish to die benign. Returns (weights, biases), a column per head."""
    weights, biases = [], []
    benign = classes == 0
    for k in range(1, n_categories + 1):
        rows = np.flatnonzero(benign | (classes == k))
        head = _binary_model(matrix[rows], (classes[rows] == k).astype(np.int8), seed)
        weights.append(head.coef_[0])
        biases.append(head.intercept_[0])
    return np.vstack(weights).T, np.array(biases)


def _max_probability(matrix, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    logits = np.asarray(matrix @ weights) + biases
    return 1.0 / (1.0 + np.exp(-logits.max(axis=1)))


def choose_threshold(
    none_scores: np.ndarray,
    max_false_alarm: float,
    flagged_anyway: np.ndarray | None = None,
    may_speak: np.ndarray | None = None,
) -> float:
    """The lowest threshold at which at most ``max_false_alarm`` of the benign messages are flagged,
    counting those the other layers flag anyway (``flagged_anyway``) and letting the classifier
    speak only where the net lets it (``may_speak``); both default to the classifier alone."""
    anyway = np.zeros(len(none_scores), bool) if flagged_anyway is None else np.asarray(flagged_anyway, bool)
    speaks = np.ones(len(none_scores), bool) if may_speak is None else np.asarray(may_speak, bool)
    room = int(np.floor(max_false_alarm * len(none_scores) + 1e-9)) - int(anyway.sum())
    candidates = np.sort(none_scores[speaks & ~anyway])[::-1]
    if room < 0 or not len(candidates):
        return 0.99 if room < 0 else 0.5
    if room >= len(candidates):
        return 0.05
    return float(min(0.99, max(0.05, round(float(candidates[room]) + 1e-4, 4))))


def train(
    texts: Sequence[str],
    labels: Sequence[str],
    categories: Sequence[str],
    *,
    max_false_alarm: float,
    folds: int,
    seed: int,
    flagged_anyway: Sequence[bool] | None = None,
    may_speak: Sequence[bool] | None = None,
    framed: Sequence[bool] | None = None,
    framed_threshold: float | None = None,
    in_budget: Sequence[bool] | None = None,
) -> tuple[ClassifierModel, TrainReport]:
    """Fit the category heads on normalised ``texts``; choose the threshold by stratified k-fold.

    ``flagged_anyway`` and ``may_speak`` say, per text, whether the net's other layers flag it
    and whether the net lets the classifier speak on it: with them the threshold holds the whole
    net's cross-validated false alarms within ``max_false_alarm``, not the classifier's alone.
    Where it may not but the message is only ``framed``, it still speaks at ``framed_threshold``.
    Benign texts not ``in_budget`` are learnt from but not counted in that budget.
    """
    from scipy.sparse import csr_matrix
    from sklearn.model_selection import StratifiedKFold

    y = np.array([label != "none" for label in labels], dtype=np.int8)
    if y.sum() < folds or (len(y) - y.sum()) < folds:
        raise ClassifierError(f"the training corpus needs at least {folds} crisis and {folds} benign messages")
    present = [c for c in categories if c in set(labels)]
    classes = np.array([0 if label == "none" else 1 + present.index(label) for label in labels])
    anyway = np.zeros(len(y), bool) if flagged_anyway is None else np.asarray(flagged_anyway, bool)
    speaks = np.ones(len(y), bool) if may_speak is None else np.asarray(may_speak, bool)
    raw = counts(texts)

    oof = np.zeros(len(y), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, held_rows in splitter.split(np.zeros(len(y)), y):
        fold_idf, _ = fit_idf(raw[fit_rows])
        weights, biases = _fit_heads(weigh(raw[fit_rows], fold_idf), classes[fit_rows], len(present), seed)
        oof[held_rows] = _max_probability(weigh(raw[held_rows], fold_idf), weights, biases)
    benign = y == 0
    if in_budget is not None:
        benign &= np.asarray(in_budget, bool)
    if framed is not None and framed_threshold is not None:
        anyway = anyway | (np.asarray(framed, bool) & ~speaks & (oof >= framed_threshold))
    threshold = choose_threshold(oof[benign], max_false_alarm, anyway[benign], speaks[benign])
    flagged = anyway | (speaks & (oof >= threshold))
    cv_recall = float(np.mean(flagged[y == 1]))
    cv_false_alarm = float(np.mean(flagged[benign]))

    idf, _ = fit_idf(raw)
    weights, biases = _fit_heads(weigh(raw, idf), classes, len(present), seed)
    weights = np.round(weights, DECIMALS).astype(np.float32)
    kept = np.zeros_like(weights)
    for head in range(weights.shape[1]):
        strongest = np.argsort(-np.abs(weights[:, head]), kind="stable")[:HEAD_WEIGHTS_KEPT]
        kept[strongest, head] = weights[strongest, head]
    heads = csr_matrix(kept)
    bias = np.round(biases, DECIMALS).astype(np.float32)

    report = TrainReport(
        len(y), int(y.sum()), threshold, round(cv_recall, 4), round(cv_false_alarm, 4), corpus_hash(texts, labels)
    )
    meta = {
        "format": FORMAT,
        "n_features": N_FEATURES,
        "char_ngrams": list(CHAR_NGRAMS),
        "word_ngrams": list(WORD_NGRAMS),
        "C": C,
        "weighting": "sublinear tf-idf",
        "heads": "category versus none",
        "weights_kept_per_head": HEAD_WEIGHTS_KEPT,
        "threshold": threshold,
        "threshold_counts_other_layers": flagged_anyway is not None or may_speak is not None,
        "categories": present,
        "folds": folds,
        "seed": seed,
        "max_false_alarm": max_false_alarm,
        "cv_recall": report.cv_recall,
        "cv_false_alarm": report.cv_false_alarm,
        "messages": report.messages,
        "crisis": report.crisis,
        "corpus_sha256": report.corpus_sha256,
    }
    return ClassifierModel(heads, bias, threshold, tuple(present), meta, idf), report


# --- the file ------------------------------------------------------------------


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def model_bytes(model: ClassifierModel) -> bytes:
    """The model as a numpy ``.npz`` archive with fixed timestamps: same model, same bytes."""
    from scipy.sparse import coo_matrix

    heads = coo_matrix(model.heads)
    order = np.lexsort((heads.row, heads.col))
    unseen = float(model.idf.max()) if model.idf is not None else 1.0
    seen = np.flatnonzero(model.idf < unseen).astype(np.int32) if model.idf is not None else np.zeros(0, np.int32)
    arrays = {
        "idf_index": seen,
        "idf_value": model.idf[seen].astype(np.float32) if model.idf is not None else np.zeros(0, np.float32),
        "idf_unseen": np.array([unseen], dtype=np.float32),
        "meta": np.frombuffer(json.dumps(model.meta, sort_keys=True).encode("utf-8"), dtype=np.uint8),
        "head_index": heads.row[order].astype(np.int32),
        "head_class": heads.col[order].astype(np.int16),
        "head_weight": heads.data[order].astype(np.float32),
        "head_bias": np.asarray(model.bias, dtype=np.float32),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, _npy(arrays[name]), compresslevel=9)
    return buffer.getvalue()


def write_model(model: ClassifierModel, path: Path) -> None:
    with atomic_writer(path, binary=True) as fh:
        fh.write(model_bytes(model))


def load_model(path: Path) -> ClassifierModel:
    """Read a classifier file written by `write_model`; a clear error names the file otherwise."""
    from scipy.sparse import csr_matrix

    if not path.is_file():
        raise ClassifierError(f"{path}: classifier file is missing; rebuild it with `coach safety train`")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        if meta.get("format") != FORMAT or meta.get("n_features") != N_FEATURES:
            raise ClassifierError(
                f"{path}: classifier file is from another format; rebuild it with `coach safety train`"
            )
        size = 2 * N_FEATURES
        categories = tuple(meta["categories"])
        heads = csr_matrix(
            (arrays["head_weight"], (arrays["head_index"], arrays["head_class"])), shape=(size, len(categories))
        )
        idf = np.full(size, float(arrays["idf_unseen"][0]), dtype=np.float32)
        idf[arrays["idf_index"]] = arrays["idf_value"]
        return ClassifierModel(
            heads, arrays["head_bias"].astype(np.float32), float(meta["threshold"]), categories, meta, idf
        )
    except ClassifierError:
        raise
    except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise ClassifierError(
            f"{path}: not a readable classifier file ({err}); rebuild it with `coach safety train`"
        ) from None

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

Two heads: crisis-versus-none (the one that can raise the panel) and, among
crisis messages, which category (to order the panel and the steering; only
the strongest weights per category are kept, to stay small). The decision
threshold is the lowest score whose cross-validated false-alarm rate on the
training corpus stays within ``max_false_alarm``, and it is stored in the
file with the cross-validated recall, so the trade is visible.

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

FORMAT = 2
N_FEATURES = 2**18
CHAR_NGRAMS = (2, 5)
WORD_NGRAMS = (1, 2)
C = 256.0
"""Weak regularisation: on the probe and fresh dev sets, never trained on, the net caught 11 more of
1,485 crisis messages with C=256 than with C=16, at one false alarm fewer; C from 1 to 1000 were
measured (see the README's crisis net section)."""
CATEGORY_WEIGHTS_KEPT = 4000
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
    weights: np.ndarray  # (2 * N_FEATURES,) float32
    bias: float
    threshold: float
    categories: tuple[str, ...]
    category_weights: object  # scipy CSR (2 * N_FEATURES, n_categories)
    category_bias: np.ndarray
    meta: dict
    idf: np.ndarray | None = None  # (2 * N_FEATURES,) float32

    def hashed(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        return hashed_features(text, self.idf)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Crisis probability per (normalised) text."""
        return np.array([self.score(text) for text in texts], dtype=np.float64)

    def score(self, text: str, hashed: tuple[np.ndarray, np.ndarray] | None = None) -> float:
        indices, values = hashed if hashed is not None else self.hashed(text)
        logit = float(np.dot(self.weights[indices], values)) + self.bias
        return 1.0 / (1.0 + math.exp(-logit))

    @cached_property
    def _category_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The category head as a dense block of its few non-zero rows, and each feature's row
        in it (the last, all-zero row for the rest): slicing the sparse matrix per message cost
        half a millisecond, a lookup and a small product cost microseconds."""
        csr = self.category_weights.tocsr()
        rows = np.flatnonzero(np.diff(csr.indptr))
        dense = np.zeros((len(rows) + 1, csr.shape[1]), dtype=np.float32)
        dense[: len(rows)] = csr[rows].toarray()
        where = np.full(csr.shape[0], len(rows), dtype=np.int32)
        where[rows] = np.arange(len(rows), dtype=np.int32)
        return where, dense

    def category(self, text: str, hashed: tuple[np.ndarray, np.ndarray] | None = None) -> str:
        """The most likely crisis category for a (normalised) text."""
        indices, values = hashed if hashed is not None else self.hashed(text)
        where, dense = self._category_rows
        logits = values @ dense[where[indices]] + self.category_bias
        return self.categories[int(np.argmax(logits))]


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


def choose_threshold(none_scores: np.ndarray, max_false_alarm: float) -> float:
    """The lowest threshold that flags at most ``max_false_alarm`` of the benign scores."""
    ordered = np.sort(none_scores)[::-1]
    allowed = int(np.floor(max_false_alarm * len(ordered) + 1e-9))
    if allowed >= len(ordered):
        return 0.5
    return float(min(0.99, max(0.05, round(float(ordered[allowed]) + 1e-4, 4))))


def train(
    texts: Sequence[str],
    labels: Sequence[str],
    categories: Sequence[str],
    *,
    max_false_alarm: float,
    folds: int,
    seed: int,
) -> tuple[ClassifierModel, TrainReport]:
    """Fit both heads on normalised ``texts``; choose the threshold by stratified k-fold."""
    from scipy.sparse import csr_matrix
    from sklearn.model_selection import StratifiedKFold

    y = np.array([label != "none" for label in labels], dtype=np.int8)
    if y.sum() < folds or (len(y) - y.sum()) < folds:
        raise ClassifierError(f"the training corpus needs at least {folds} crisis and {folds} benign messages")
    raw = counts(texts)

    oof = np.zeros(len(y), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, held_rows in splitter.split(np.zeros(len(y)), y):
        fold_idf, _ = fit_idf(raw[fit_rows])
        fold_model = _binary_model(weigh(raw[fit_rows], fold_idf), y[fit_rows], seed)
        oof[held_rows] = fold_model.predict_proba(weigh(raw[held_rows], fold_idf))[:, 1]
    idf, _ = fit_idf(raw)
    matrix = weigh(raw, idf)
    threshold = choose_threshold(oof[y == 0], max_false_alarm)
    cv_recall = float(np.mean(oof[y == 1] >= threshold))
    cv_false_alarm = float(np.mean(oof[y == 0] >= threshold))

    binary = _binary_model(matrix, y, seed)
    weights = np.round(binary.coef_[0], DECIMALS).astype(np.float32)
    bias = float(round(float(binary.intercept_[0]), DECIMALS))

    crisis_rows = np.flatnonzero(y == 1)
    present = [c for c in categories if c in {labels[i] for i in crisis_rows}]
    cat_y = np.array([present.index(labels[i]) for i in crisis_rows])
    if len(present) >= 2:  # one-versus-rest, one liblinear model per category
        rows, biases = [], []
        for k in range(len(present)):
            one = _binary_model(matrix[crisis_rows], (cat_y == k).astype(np.int8), seed)
            rows.append(one.coef_[0])
            biases.append(one.intercept_[0])
        coef = np.round(np.vstack(rows), DECIMALS).astype(np.float32)
        cat_bias = np.round(np.array(biases), DECIMALS).astype(np.float32)
    else:
        coef = np.zeros((len(present), matrix.shape[1]), dtype=np.float32)
        cat_bias = np.zeros(len(present), dtype=np.float32)
    kept = np.zeros_like(coef)
    for row in range(coef.shape[0]):
        order = np.argsort(-np.abs(coef[row]), kind="stable")[:CATEGORY_WEIGHTS_KEPT]
        kept[row, order] = coef[row, order]
    category_weights = csr_matrix(kept.T)

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
        "threshold": threshold,
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
    model = ClassifierModel(weights, bias, threshold, tuple(present), category_weights, cat_bias, meta, idf)
    return model, report


# --- the file ------------------------------------------------------------------


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def model_bytes(model: ClassifierModel) -> bytes:
    """The model as a numpy ``.npz`` archive with fixed timestamps: same model, same bytes."""
    from scipy.sparse import coo_matrix

    nonzero = np.flatnonzero(model.weights).astype(np.int32)
    cats = coo_matrix(model.category_weights)
    order = np.lexsort((cats.col, cats.row))
    unseen = float(model.idf.max()) if model.idf is not None else 1.0
    seen = np.flatnonzero(model.idf < unseen).astype(np.int32) if model.idf is not None else np.zeros(0, np.int32)
    arrays = {
        "idf_index": seen,
        "idf_value": model.idf[seen].astype(np.float32) if model.idf is not None else np.zeros(0, np.float32),
        "idf_unseen": np.array([unseen], dtype=np.float32),
        "meta": np.frombuffer(json.dumps(model.meta, sort_keys=True).encode("utf-8"), dtype=np.uint8),
        "bin_index": nonzero,
        "bin_weight": model.weights[nonzero].astype(np.float32),
        "bin_bias": np.array([model.bias], dtype=np.float32),
        "cat_index": cats.row[order].astype(np.int32),
        "cat_class": cats.col[order].astype(np.int16),
        "cat_weight": cats.data[order].astype(np.float32),
        "cat_bias": np.asarray(model.category_bias, dtype=np.float32),
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
        weights = np.zeros(size, dtype=np.float32)
        weights[arrays["bin_index"]] = arrays["bin_weight"]
        categories = tuple(meta["categories"])
        category_weights = csr_matrix(
            (arrays["cat_weight"], (arrays["cat_index"], arrays["cat_class"])), shape=(size, len(categories))
        )
        idf = np.full(size, float(arrays["idf_unseen"][0]), dtype=np.float32)
        idf[arrays["idf_index"]] = arrays["idf_value"]
        return ClassifierModel(
            weights,
            float(arrays["bin_bias"][0]),
            float(meta["threshold"]),
            categories,
            category_weights,
            arrays["cat_bias"].astype(np.float32),
            meta,
            idf,
        )
    except ClassifierError:
        raise
    except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise ClassifierError(
            f"{path}: not a readable classifier file ({err}); rebuild it with `coach safety train`"
        ) from None

"""The classifier's training files: every one of them trained on, no measuring set among them.

A training file dropped into ``config/safety/corpus`` but left out of ``classifier.train`` in
safety.yaml is silently never learnt (and the shipped classifier no longer says what the
corpus folder suggests); a dev, probe or test file listed there would make its figures lie.
The held-out `test*.jsonl` files are never read here.
"""

from __future__ import annotations

from actors.safety.loader import BUNDLED_SAFETY, load_net_at, train_paths

CORPUS = BUNDLED_SAFETY.parent / "corpus"


def test_every_training_file_is_listed_and_no_measuring_set_is():
    config = load_net_at(BUNDLED_SAFETY, with_classifier=False).config
    paths = train_paths(BUNDLED_SAFETY, config)
    listed = {p.name for p in paths}
    unlisted = {p.name for p in CORPUS.glob("train*.jsonl")} - listed
    assert not unlisted, f"training files missing from classifier.train in safety.yaml: {sorted(unlisted)}"
    assert not any(name.startswith(("dev", "probe", "test")) for name in listed)
    assert all(p.is_file() for p in paths)

"""Reading a pack's safety section into a ready net, or into a list of problems.

`safety_problems` is what `coach config check` reports (every problem at
once, each naming file and field); `load_safety_net` gives the net the chat
and the pipeline call, cached per pack so a conversation does not re-read
YAML or weights on every message. A pack without a ``safety:`` entry gets
the bundled one: the crisis net applies in every domain.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from actors.pack.problems import Problem
from coach_data import bundled_dir
from state.errors import CoachError

from .checks import config_problems, lexicon_problems
from .classifier import ClassifierError, load_model
from .lexicon import Lexicon, build_lexicon, read_lexicon_file
from .taxonomy import LexiconFile, SafetyConfig

BUNDLED_SAFETY = bundled_dir("config") / "safety" / "safety.yaml"


class SafetyConfigError(CoachError):
    def __init__(self, path: Path, problems: list[Problem]):
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"safety section {path} has {len(problems)} problem(s):\n{lines}")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_config(path: Path, problems: list[Problem]) -> SafetyConfig | None:
    from actors.pack.yaml_io import YamlProblem, load_yaml

    shown = _display(path)
    if not path.is_file():
        problems.append(Problem(shown, "", "safety file is missing"))
        return None
    try:
        data = load_yaml(path)
    except YamlProblem as err:
        problems.append(Problem(shown, f"line {err.line}" if err.line else "", err.message))
        return None
    try:
        config = SafetyConfig.model_validate(data or {})
    except ValidationError as err:
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
            message = {
                "extra_forbidden": "unknown field (check its spelling)",
                "missing": "required field is missing",
            }.get(e["type"], e["msg"])
            problems.append(Problem(shown, loc, message))
        return None
    problems += config_problems(shown, config)
    return config


def read_lexicons(path: Path, config: SafetyConfig, problems: list[Problem], *, thorough: bool = True) -> Lexicon:
    folder = path.parent / config.lexicon_dir
    files: dict[str, tuple[LexiconFile, str]] = {}
    for language in config.languages:
        file = folder / f"{language}.yaml"
        shown = _display(file)
        if not file.is_file():
            problems.append(Problem(shown, "", f"language {language!r} is listed in safety.yaml but has no lexicon"))
            continue
        lex = read_lexicon_file(file, shown, problems)
        if lex is not None:
            problems += lexicon_problems(shown, lex, language, config, shapes=thorough)
            files[language] = (lex, shown)
    return build_lexicon(files, config.languages, problems, compile_now=thorough)


def classifier_path(path: Path, config: SafetyConfig) -> Path:
    return (path.parent / config.classifier.file).resolve()


def train_paths(path: Path, config: SafetyConfig) -> list[Path]:
    return [(path.parent / name).resolve() for name in config.classifier.train]


def safety_config_problems(path: Path) -> list[Problem]:
    """The problems of safety.yaml itself (what loading a pack checks; the lexicons and classifier
    are checked when the net loads, and all of it by `safety_problems`)."""
    problems: list[Problem] = []
    read_config(path, problems)
    return problems


def safety_problems(path: Path) -> list[Problem]:
    """Every problem in the safety section at ``path`` (safety.yaml, its lexicons, its classifier)."""
    problems: list[Problem] = []
    config = read_config(path, problems)
    if config is None:
        return problems
    read_lexicons(path, config, problems)
    model_file = classifier_path(path, config)
    try:
        model = load_model(model_file)
    except ClassifierError as err:
        problems.append(Problem(_display(path), "classifier.file", str(err).split(": ", 1)[-1]))
    else:
        unknown = sorted(set(model.categories) - set(config.category_ids))
        if unknown:
            problems.append(
                Problem(
                    _display(model_file),
                    "",
                    f"trained on unknown categories {unknown}; rebuild it with `coach safety train`",
                )
            )
    return problems


def safety_file_of(pack: Any) -> Path:
    """The pack's safety.yaml: its own when the manifest names one, else the bundled one."""
    if pack is None:
        return BUNDLED_SAFETY
    named = getattr(getattr(pack, "manifest", None), "safety", None)
    root = getattr(pack, "root", None)
    if named and root is not None:
        return (Path(root) / named).resolve()
    return BUNDLED_SAFETY


_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()
_LOADING = threading.Lock()


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return (None, None)


def load_net_at(path: Path, *, with_classifier: bool = True):
    """A `SafetyNet` from the safety.yaml at ``path``; `SafetyConfigError` lists what is wrong.

    Without the classifier (``with_classifier=False``) it is the net that retraining needs:
    the file about to be rebuilt may be missing or from an older format."""
    from .detector import SafetyNet

    path = Path(path).resolve()
    problems: list[Problem] = []
    config = read_config(path, problems)
    if config is None:
        raise SafetyConfigError(path, problems)
    lexicon = read_lexicons(path, config, problems, thorough=False)
    if problems:
        raise SafetyConfigError(path, problems)
    model = None
    if with_classifier:
        model = load_model(classifier_path(path, config))
        model.score("warm up")  # import the hashing code now, not in the first message's time
    return SafetyNet(config, lexicon, model, path)


def load_safety_net(pack: Any = None):
    """The net for ``pack`` (a loaded domain pack, or None for the bundled one), cached per pack."""
    return cached_net_at(safety_file_of(pack))


def cached_net_at(path: Path):
    """`load_net_at`, cached by file and refreshed when a file of the section changes."""
    path = Path(path).resolve()
    with _LOADING:  # one load at a time: a second caller (the chat, behind `preload_safety_net`) waits for it
        with _LOCK:
            key = (str(path), _stamp(path))
            net = _CACHE.get(key)
            if net is not None and net.stamp == net.current_stamp():
                return net
        net = load_net_at(path)
        net.warm()  # the chat and `coach safety eval` read every message with all patterns compiled
        with _LOCK:
            _CACHE[key] = net
        return net


def preload_safety_net(pack: Any = None) -> threading.Thread:
    """Load ``pack``'s net in a daemon thread, so the chat finds it ready when it opens.

    Why: loading reads six lexicons and the classifier (several seconds on a small CPU), and
    the chat must not send a message before its net is loaded. Started when the app starts,
    the load is over before a person reaches the chat; a chat opened sooner waits for this
    same load (`cached_net_at` loads once at a time) instead of starting a second one. A
    broken safety section is not reported here: the chat reports it when it opens.
    """

    def load() -> None:
        try:
            load_safety_net(pack)
        except Exception:  # noqa: BLE001 - reported by whoever needs the net, with its own message
            return

    thread = threading.Thread(target=load, name="safety-net-preload", daemon=True)
    thread.start()
    return thread

"""What a GGUF file says about itself, read from its header in plain Python: no weights, no llama.cpp.

Why not llama.cpp's own reader: the model picker describes every file it lists
(size, quantisation, context length) and the chat decides a file's chat format
before loading it. llama.cpp needs a vocabulary load for that (1.5 s for
Gemma's 262k tokens) and logs from C while it reads; the header is a few
megabytes of length-prefixed keys and values that Python reads in a fraction
of that, the same way on every machine.

The GGUF header (little-endian, versions 2 and 3): ``GGUF``, version (u32),
tensor count (u64), key count (u64), then each key as a string (u64 length,
UTF-8 bytes), a value type (u32) and the value; arrays are an element type
(u32), a count (u64) and the elements. Only the token texts are kept from the
arrays (to name the EOS token and find end-of-turn markers); the others are
skipped.
"""

from __future__ import annotations

import mmap
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

from actors.backends.chat_templates import TURN_END_MARKERS
from state.errors import CoachError

MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_TOKENS = "tokenizer.ggml.tokens"

QUANT_NAMES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
}
"""llama.cpp's `general.file_type` values (LLAMA_FTYPE_MOSTLY_*), as people write them."""


@dataclass(frozen=True)
class GGUFInfo:
    """The facts about one GGUF that the chat and its model picker use."""

    path: Path
    size_bytes: int
    metadata: dict[str, object] = field(repr=False)
    """Every scalar and string key of the header (arrays left out)."""
    eos_token: str = ""
    bos_token: str = ""

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture") or "")

    @property
    def chat_template(self) -> str:
        return str(self.metadata.get("tokenizer.chat_template") or "")

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if isinstance(value, int) and value > 0 else None

    @property
    def quantization(self) -> str:
        value = self.metadata.get("general.file_type")
        if isinstance(value, int):
            return QUANT_NAMES.get(value, f"type {value}")
        return "?"

    @property
    def stop_tokens(self) -> tuple[str, ...]:
        """What ends a reply: the EOS token, and the end-of-turn markers the template writes."""
        stops = [self.eos_token] if self.eos_token else []
        stops += [m for m in TURN_END_MARKERS if m in self.chat_template and m not in stops]
        return tuple(stops)

    def describe(self) -> str:
        """ "98 MB · Q4_1 · 8,192 ctx", for the model picker."""
        ctx = f"{self.context_length:,} ctx" if self.context_length else "ctx ?"
        return f"{human_size(self.size_bytes)} · {self.quantization} · {ctx}"


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB", "MB") else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover - the loop returns at GB


_cache: dict[tuple[str, int, int], GGUFInfo] = {}
_lock = threading.Lock()


def read_gguf(path: Path) -> GGUFInfo:
    """The header's facts; `CoachError` naming the file when it is missing or not a GGUF.

    Cached per (path, size, modification time): a file re-exported in place is read again.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as err:
        raise CoachError(f"no GGUF file at {path} ({err.strerror or err})") from None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            info = _Header(data).parse(path, stat.st_size)
    except OSError as err:
        raise CoachError(f"cannot read {path}: {err.strerror or err}") from None
    except (struct.error, UnicodeDecodeError, ValueError, IndexError) as err:
        raise CoachError(f"{path} is not a readable GGUF file (its header is damaged: {err})") from None
    with _lock:
        _cache[key] = info
    return info


class _Header:
    """A cursor over the memory-mapped file: only the header's pages are ever read."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data, self.at = data, 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values

    def string(self) -> bytes:
        (n,) = self.unpack("<Q")
        if self.at + n > len(self.data):
            raise ValueError("the header ends inside a string")
        value = self.data[self.at : self.at + n]
        self.at += n
        return value

    def parse(self, path: Path, size: int) -> GGUFInfo:
        if self.data[:4] != MAGIC:
            raise CoachError(f"{path} is not a GGUF file (it does not start with GGUF)")
        self.at = 4
        (version,) = self.unpack("<I")
        if version not in (2, 3):
            raise CoachError(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
        _tensors, count = self.unpack("<QQ")
        metadata: dict[str, object] = {}
        tokens: list[bytes] = []
        for _ in range(count):
            key = self.string().decode("utf-8")
            (kind,) = self.unpack("<I")
            if kind == _ARRAY:
                element, n = self.unpack("<IQ")
                if key == _TOKENS and element == _STRING:
                    tokens = [self.string() for _ in range(n)]
                else:
                    self.skip_array(element, n)
            else:
                metadata[key] = self.value(kind)
        eos = _token_text(tokens, metadata.get("tokenizer.ggml.eos_token_id"))
        bos = _token_text(tokens, metadata.get("tokenizer.ggml.bos_token_id"))
        return GGUFInfo(path=path, size_bytes=size, metadata=metadata, eos_token=eos, bos_token=bos)

    def value(self, kind: int) -> object:
        if kind == _STRING:
            return self.string().decode("utf-8", errors="replace")
        fmt = _SCALARS.get(kind)
        if fmt is None:
            raise ValueError(f"unknown value type {kind}")
        return self.unpack(fmt)[0]

    def skip_array(self, element: int, n: int) -> None:
        if element == _STRING:
            for _ in range(n):
                (length,) = self.unpack("<Q")
                self.at += length
        elif element == _ARRAY:
            for _ in range(n):
                inner, m = self.unpack("<IQ")
                self.skip_array(inner, m)
        else:
            fmt = _SCALARS.get(element)
            if fmt is None:
                raise ValueError(f"unknown array element type {element}")
            self.at += struct.calcsize(fmt) * n


def _token_text(tokens: list[bytes], token_id: object) -> str:
    if isinstance(token_id, int) and 0 <= token_id < len(tokens):
        return tokens[token_id].decode("utf-8", errors="replace")
    return ""


def write_gguf_header(path: Path, metadata: dict[str, object], tokens: list[str] | None = None) -> Path:
    """A GGUF holding only a header (no tensors): what `read_gguf` reads, for tests and tools.

    Strings, ints (as i64 … u32 by sign and size: u32 when they fit), floats and bools; ``tokens``
    becomes ``tokenizer.ggml.tokens``. llama.cpp cannot load such a file; it has no weights.
    """
    out = bytearray(MAGIC + struct.pack("<IQQ", 3, 0, len(metadata) + (1 if tokens is not None else 0)))

    def string(value: str) -> bytes:
        data = value.encode("utf-8")
        return struct.pack("<Q", len(data)) + data

    for key, value in metadata.items():
        out += string(key)
        if isinstance(value, bool):
            out += struct.pack("<I?", 7, value)
        elif isinstance(value, int):
            out += struct.pack("<II", 4, value) if 0 <= value < 2**32 else struct.pack("<Iq", 11, value)
        elif isinstance(value, float):
            out += struct.pack("<If", 6, value)
        else:
            out += struct.pack("<I", _STRING) + string(str(value))
    if tokens is not None:
        out += string(_TOKENS) + struct.pack("<IIQ", _ARRAY, _STRING, len(tokens))
        for token in tokens:
            out += string(token)
    path.write_bytes(bytes(out))
    return path

"""Reading JSON (and text and .npz) files we are given: the descriptor every siamrn-jax artifact carries
(``model.json`` of a checkpoint, ``addon.json`` of an add-on, ``export.json`` of an export) and the
annotation and index files of the data tools. One rule for what is missing, corrupt (not UTF-8, not
JSON) or of another format, so each caller reports it the same way with its own error type."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np


def read_json(path: Path, error: type[Exception]) -> Any:
    """The JSON value in ``path``; ``error`` ("corrupt JSON", naming the file and where) for bytes that are
    not UTF-8 JSON. A missing or unreadable file raises the ``OSError``."""
    data = Path(path).read_bytes()
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: corrupt JSON ({e})") from None


def read_format_json(path: Path, fmt: str, error: type[Exception], missing: str) -> dict[str, Any]:
    """The object in ``path`` whose ``"format"`` is ``fmt``.

    Raises:
      error: ``missing`` (a message naming the artifact) when ``path`` does not exist; "corrupt JSON" for
        bytes that are not UTF-8 JSON; "unknown format" for JSON that is not an object of format ``fmt``.
    """
    try:
        meta = read_json(path, error)
    except (FileNotFoundError, NotADirectoryError):
        raise error(missing) from None
    got = meta.get("format") if isinstance(meta, dict) else None
    if got != fmt:
        raise error(f"{path}: unknown format {got!r} (expected {fmt!r})")
    return meta


def read_text(path: Path, error: type[Exception]) -> str:
    """The text of ``path``; ``error`` ("not UTF-8 text", naming the file) for other bytes. A missing or
    unreadable file raises the ``OSError``."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text ({e})") from None


# What np.load and zipfile raise on hostile bytes: not a zip / a pickle refused / a bad header (ValueError),
# cut short (EOFError), a directory pointing outside the bytes (OSError), a damaged deflated member
# (zlib.error), unsupported zip features (NotImplementedError), an "encrypted" member (RuntimeError).
_NPZ_ERRORS = (
    ValueError,
    EOFError,
    OSError,
    KeyError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
)


def read_npz(path: Path, error: type[Exception], problem: str) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file ``path`` (pickles refused); ``error`` ("FILE: PROBLEM (why)") for
    bytes np.load cannot read. A missing or unreadable file raises the ``OSError``. The bytes are read
    first: np.load leaves the file open when it fails on it."""
    data = Path(path).read_bytes()
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except _NPZ_ERRORS as e:
        raise error(f"{path}: {problem} ({e})") from None

"""Sweep checkpoints: one .npz file with the arrays and a JSON header, replaced atomically.

A checkpoint is written to a temporary file in the same folder, flushed to disk and moved
over the previous one with `os.replace`, so a crash or preemption while saving leaves the
previous checkpoint intact. A JSON copy of the header is written beside it for people and
scripts; only the .npz file is read back.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from metagen_jax.result import write_bytes_atomic

CHECKPOINT_NAME = "exhaustive_checkpoint.npz"
CHECKPOINT_FORMAT = 1
_HEADER_KEY = "header_json"

# Header keys that must match between a checkpoint and the sweep that resumes from it.
IDENTITY_KEYS = ("space_fingerprint", "spec_hash", "objectives")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, another format, another spec or space."""


def checkpoint_path(out_dir: Path) -> Path:
    return Path(out_dir) / CHECKPOINT_NAME


def encode_checkpoint(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise a header and named arrays into the bytes of an .npz file."""
    if _HEADER_KEY in arrays:
        raise ValueError(f"array name {_HEADER_KEY!r} is reserved for the checkpoint header")
    header = {"format": CHECKPOINT_FORMAT, **header}
    text = json.dumps(header, sort_keys=True)
    buffer = io.BytesIO()
    np.savez(buffer, **{_HEADER_KEY: np.frombuffer(text.encode(), dtype=np.uint8)}, **arrays)
    return buffer.getvalue()


def decode_checkpoint(payload: bytes, source: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read the header and arrays back from .npz bytes; `source` names the file in errors."""
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(arrays.pop(_HEADER_KEY).tobytes().decode())
    except Exception as error:  # noqa: BLE001
        # A truncated or overwritten file fails inside zipfile, zlib or numpy's format
        # reader with BadZipFile, EOFError, IndexError, zlib.error, ValueError and more.
        raise CheckpointError(f"checkpoint {source} is unreadable ({type(error).__name__}: {error}); "
                              "delete it or start without --resume") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {source} has no header object; delete it or start without --resume")
    if header.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {source} has format {header.get('format')!r}, "
                              f"expected {CHECKPOINT_FORMAT}; delete it or start without --resume")
    return header, arrays


def write_checkpoint(out_dir: Path, payload: bytes, header: dict[str, Any]) -> Path:
    """Atomically replace the checkpoint in `out_dir` with `payload`, plus its JSON header copy."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = checkpoint_path(out_dir)
    write_bytes_atomic(target, payload)
    write_bytes_atomic(target.with_suffix(".json"), (json.dumps(header, indent=2, sort_keys=True) + "\n").encode())
    return target


def read_checkpoint_bytes(out_dir: Path) -> bytes | None:
    """Read the checkpoint's bytes, or return None when `out_dir` has none."""
    try:
        return checkpoint_path(out_dir).read_bytes()
    except FileNotFoundError:
        return None


def check_identity(header: dict[str, Any], expected: dict[str, Any], source: Path) -> None:
    """Raise CheckpointError when the checkpoint belongs to another spec, space or objective list."""
    for key in IDENTITY_KEYS:
        found, wanted = header.get(key), expected[key]
        if isinstance(wanted, tuple):
            found = tuple(found) if isinstance(found, list) else found
        if found != wanted:
            raise CheckpointError(
                f"checkpoint {source} belongs to another sweep: {key} is {found!r}, this sweep has "
                f"{wanted!r}; use another output folder or start without --resume")

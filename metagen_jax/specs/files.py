"""Read a small text input file (a spec or an architecture file) with a size limit.

Only regular files are opened for reading. A FIFO, a socket or a device such as /dev/zero
reports st_size 0, so a size check alone would let an endless read through. The read
also stops one byte past the limit, because a file can grow after it was checked.
"""

from __future__ import annotations

import codecs
import os
import stat

from metagen_jax.specs.errors import SpecError

# Spec files are a few kilobytes. The limit stops a wrong path (a dataset, a checkpoint)
# from being read, and it bounds the parse. PyYAML's node tree takes about 90 bytes of
# memory per byte of a file of short keys: `metagen validate` on a 2.6 MB JSON file of
# 200,000 keys peaked at 282 MB resident memory, against 52 MB for a bundled spec.
MAX_SPEC_BYTES = 1024 * 1024

_FILE_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def read_text_file(file: str, *, label: str = "spec file", max_bytes: int = MAX_SPEC_BYTES) -> str:
    """Read a UTF-8 (or UTF-16 with a byte order mark) text file of at most `max_bytes`.

    Args:
        file: the path, as the user wrote it. Messages name it.
        label: what the file is, for messages ("spec file", "architecture file").
        max_bytes: the largest size accepted.

    Raises:
        SpecError: when the file is missing, is a directory or another non-regular file,
            cannot be read, is larger than `max_bytes` or is not text.
    """
    raw = _read_bytes(file, label, max_bytes)
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"  # strips a UTF-8 byte order mark when present
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SpecError(
            f"the file is not {encoding.removesuffix('-sig').upper()} text "
            f"(invalid byte at offset {error.start}). Save the {label} as UTF-8.",
            file=file,
            line=line,
        ) from error


def _read_bytes(file: str, label: str, max_bytes: int) -> bytes:
    try:
        status = os.stat(file)
    except FileNotFoundError:
        raise SpecError(f"{label} not found. Check the path.", file=file) from None
    except OSError as error:
        raise SpecError(f"cannot read the {label}: {error.strerror or error}.", file=file) from None
    if stat.S_ISDIR(status.st_mode):
        raise SpecError(f"this is a directory. Expected a .yaml or .json {label}.", file=file)
    _check_regular(status.st_mode, file, label)

    # O_NONBLOCK keeps open() from waiting for a writer if the path was swapped for a FIFO
    # after the stat above. The fstat below then rejects it. Regular files ignore the flag.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(file, flags)
    except OSError as error:
        raise SpecError(f"cannot read the {label}: {error.strerror or error}.", file=file) from None
    try:
        _check_regular(os.fstat(descriptor).st_mode, file, label)
        with os.fdopen(descriptor, "rb", closefd=False) as stream:
            raw = stream.read(max_bytes + 1)
    except OSError as error:
        raise SpecError(f"cannot read the {label}: {error.strerror or error}.", file=file) from None
    finally:
        os.close(descriptor)
    if len(raw) > max_bytes:
        raise SpecError(
            f"the file has more than {max_bytes:,} bytes, the maximum size of a {label}.", file=file
        )
    return raw


def _check_regular(mode: int, file: str, label: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "a special file")
    raise SpecError(f"this is {kind}, not a regular file. Expected a .yaml or .json {label}.", file=file)

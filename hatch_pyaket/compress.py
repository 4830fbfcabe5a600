"""The zstd frames a launcher embeds: each payload file cut into equal parts, each compressed alone.

The launcher decompresses the parts of a file on every core and checks each against its sha256
(pyaket-core payload.rs); payload/build.rs only embeds what this module writes (docs/payload-contract.md,
"frames.json"). Compressing uv (~37 MB) at level 18 costs ~20 s of CPU, so the parts of all files are
compressed together on every core (zstandard releases the GIL), and the blobs of files that outlive one
build (uv, an embedded Python, dependency wheels) are kept in `<plugin cache>/blobs`: a fresh cargo target
dir or another project does not compress them again.

Deterministic: the same content, level, frame size and zstd library give the same bytes. The blob's name
carries all four, so a cache filled by another zstd version is never mixed into a build.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hatch_pyaket import fsio
from hatch_pyaket.errors import BuildError

# Upper bound of a part's size. Smaller parts decompress on more cores but compress worse: for uv,
# 8 MiB parts cost 3 % in size against one frame and halve its decompression time on 2 cores.
FRAME_BYTES = 8 << 20
# A file is cut into an even number of parts (unless one is enough): on the 2 cores of most build machines and
# CI runners the parts then split evenly between the cores, both when compressing and when the launcher
# decompresses (uv: 6 parts of 6.1 MiB instead of 5 of 7.3 MiB; 1 % larger).
FRAME_MULTIPLE = 2
# 18 rather than 19: uv is 0.04 % larger (13,207,890 vs 13,202,369 bytes) for 12 % less CPU (23.5 vs 26.7 s), the
# largest part of a cold build after cargo's.
DEFAULT_LEVEL = 18
LEVEL_ENV = "PYAKET_ZSTD_LEVEL"
SUFFIX = ".zst"
RECORD_SUFFIX = ".json"


@dataclass(frozen=True)
class Frame:
    end: int  # where the frame ends in the blob; it starts where the previous one ends
    size: int  # decompressed size
    sha256: str  # of the decompressed part


@dataclass(frozen=True)
class Blob:
    """One file's frames, concatenated in `name`; `sha256` is the blob's own digest."""

    name: str
    sha256: str
    frames: tuple[Frame, ...]

    def record(self) -> dict[str, Any]:
        return {
            "blob": self.name,
            "sha256": self.sha256,
            "frames": [{"end": f.end, "size": f.size, "sha256": f.sha256} for f in self.frames],
        }

    @staticmethod
    def from_record(data: Any) -> Blob:
        """The inverse of `record`; ValueError/KeyError/TypeError on anything else."""
        frames = tuple(Frame(int(f["end"]), int(f["size"]), str(f["sha256"])) for f in data["frames"])
        return Blob(str(data["blob"]), str(data["sha256"]), frames)


@dataclass(frozen=True)
class Source:
    """A payload file to embed."""

    key: str  # its key in the manifest's `files`
    path: Path
    share: bool  # outlives one build (uv, a Python, dependency wheels): its blob goes to the shared cache


def level(environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    text = environ.get(LEVEL_ENV, "").strip()
    if not text:
        return DEFAULT_LEVEL
    if not text.isdigit() or not 1 <= int(text) <= 22:
        raise BuildError(
            f"{LEVEL_ENV}={text!r} is not a zstd level; set it to a level from 1 to 22 "
            f"(default {DEFAULT_LEVEL}; 3 builds fast, 18 or 19 give the smallest executables) or unset it"
        )
    return int(text)


def frame_sizes(length: int) -> list[int]:
    """Equal parts of at most FRAME_BYTES, an even number of them when there are several (one for an empty file)."""
    count = max(1, -(-length // FRAME_BYTES))
    if count > 1:
        count += -count % FRAME_MULTIPLE
    return [length // count + (1 if i < length % count else 0) for i in range(count)]


def parts(data: bytes) -> list[memoryview]:
    view = memoryview(data)
    cut, start = [], 0
    for size in frame_sizes(len(data)):
        cut.append(view[start : start + size])
        start += size
    return cut


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as error:
        raise BuildError(
            f"hatch-pyaket compresses the payload with the `zstandard` package, which cannot be imported ({error}); "
            "install it into the build environment (pip install zstandard), or reinstall hatch-pyaket, which requires it"
        ) from None
    return zstandard


def blob_name(sha256: str, zstd_level: int) -> str:
    version = ".".join(map(str, _zstd().ZSTD_VERSION))
    return f"{sha256}-{zstd_level}-{FRAME_BYTES >> 20}m{FRAME_MULTIPLE}-zstd{version}{SUFFIX}"


def _compress_part(part: memoryview, zstd_level: int) -> bytes:
    # One compressor per call: a ZstdCompressor must not be shared between threads. The size in each
    # frame header lets the launcher check it; zstd's own checksum is redundant with the sha256.
    compressor = _zstd().ZstdCompressor(level=zstd_level, write_content_size=True, write_checksum=False)
    return bytes(compressor.compress(part))


def _read_valid(folder: Path, name: str, hashes: Sequence[str], sizes: Sequence[int]) -> Blob | None:
    """The blob `name` in `folder` with its record, if both are there and describe exactly these parts."""
    try:
        blob = Blob.from_record(json.loads((folder / (name + RECORD_SUFFIX)).read_text()))
        content = (folder / name).read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    described = [(f.size, f.sha256) for f in blob.frames]
    ends = [f.end for f in blob.frames]
    if (
        blob.name != name
        or described != list(zip(sizes, hashes))
        or ends != sorted(ends)
        or (ends[-1] if ends else 0) != len(content)
        or hashlib.sha256(content).hexdigest() != blob.sha256
    ):
        return None  # damaged, or written by something else: compress again
    return blob


def _store(folder: Path, blob: Blob, content: bytes) -> None:
    """Blob first, record last: a reader that finds the record finds the whole blob."""
    fsio.write_atomic(folder / blob.name, content)
    fsio.write_atomic(folder / (blob.name + RECORD_SUFFIX), json.dumps(blob.record(), indent=1) + "\n")


def _link(source: Path, destination: Path, name: str) -> None:
    for file_name in (name, name + RECORD_SUFFIX):
        fsio.link_or_copy(source / file_name, destination / file_name)


def threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def embed(
    sources: Sequence[Source],
    folder: Path,
    *,
    zstd_level: int,
    cache: Path | None,
    report: Callable[[str], None] | None = None,
) -> dict[str, Blob]:
    """The blob of each source in `folder` (with its record `<blob>.json`), by key.

    A blob already in `folder` or in `cache` is checked and reused; the others are compressed, their parts all
    at once on every core. Blobs of shared sources are also written to `cache` (best effort: a read-only or full
    cache only costs the next build the time to compress them again).
    """
    folder.mkdir(parents=True, exist_ok=True)
    found: dict[str, Blob] = {}
    todo: list[tuple[Source, str, list[memoryview], list[str]]] = []
    for source in sources:
        data = source.path.read_bytes()
        cut = parts(data)
        hashes = [hashlib.sha256(part).hexdigest() for part in cut]
        name = blob_name(hashlib.sha256(data).hexdigest(), zstd_level)
        sizes = [len(part) for part in cut]
        blob = _read_valid(folder, name, hashes, sizes)
        if blob is None and cache is not None and source.share and _read_valid(cache, name, hashes, sizes):
            _link(cache, folder, name)
            blob = _read_valid(folder, name, hashes, sizes)
        if blob is not None:
            found[source.key] = blob
            if cache is not None and source.share and not (cache / (name + RECORD_SUFFIX)).is_file():
                # Staged by an earlier build, since gone from the cache: shared again for fresh target dirs.
                with contextlib.suppress(OSError):
                    _link(folder, cache, name)
        else:
            todo.append((source, name, cut, hashes))
    jobs = [part for _, _, cut, _ in todo for part in cut]
    if jobs:
        workers = min(threads(), len(jobs))
        started = time.monotonic()
        if report is not None and sum(len(part) for part in jobs) > 1 << 20:
            names = ", ".join(source.key for source, _, _, _ in todo)
            size = sum(len(part) for part in jobs)
            report(
                f"pyaket: compressing {names} ({size / 1e6:.1f} MB) with zstd level {zstd_level} on {workers} "
                f"thread{'s' if workers > 1 else ''}; kept in {cache} for later builds"
                if cache is not None
                else f"pyaket: compressing {names} ({size / 1e6:.1f} MB) with zstd level {zstd_level}"
            )
        with ThreadPoolExecutor(max_workers=workers) as pool:
            compressed = iter(list(pool.map(lambda part: _compress_part(part, zstd_level), jobs)))
        if report is not None and time.monotonic() - started > 1:
            report(f"pyaket:   compressed in {time.monotonic() - started:.1f} s")
        for source, name, cut, hashes in todo:
            frames, end, chunks = [], 0, []
            for part, digest in zip(cut, hashes):
                chunk = next(compressed)
                end += len(chunk)
                chunks.append(chunk)
                frames.append(Frame(end, len(part), digest))
            content = b"".join(chunks)
            blob = Blob(name, hashlib.sha256(content).hexdigest(), tuple(frames))
            _store(folder, blob, content)
            if cache is not None and source.share:
                with contextlib.suppress(OSError):
                    _link(folder, cache, name)
            found[source.key] = blob
    return found


def decompress(folder: Path, blob: Blob) -> bytes:
    """A blob's content (for tests and inspection; the launcher has its own decoder)."""
    zstandard = _zstd()
    content = (folder / blob.name).read_bytes()
    out, start = [], 0
    for frame in blob.frames:
        part = zstandard.ZstdDecompressor().decompress(content[start : frame.end])
        if len(part) != frame.size or hashlib.sha256(part).hexdigest() != frame.sha256:
            raise BuildError(f"{folder / blob.name}: frame ending at {frame.end} does not decode to its recorded part")
        out.append(part)
        start = frame.end
    return b"".join(out)

"""Mach-O facts the build checks and changes: the minimum macOS, the ad-hoc signature's identifier,
and universal (fat) files made of thin slices.

Only what launchers linked by zig (through cargo-zigbuild) contain is handled: 64-bit little-endian
thin files, fat files of them, and ld's ad-hoc "linker-signed" signature (one CodeDirectory, no
team, no CMS). Anything else is refused with a MachOError rather than guessed at.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

MH_MAGIC_64 = 0xFEEDFACF
FAT_MAGIC = 0xCAFEBABE
CPU_TYPE_X86_64 = 0x01000007
CPU_TYPE_ARM64 = 0x0100000C
CPU_NAMES = {CPU_TYPE_X86_64: "x86_64", CPU_TYPE_ARM64: "arm64"}

LC_SEGMENT_64 = 0x19
LC_CODE_SIGNATURE = 0x1D
LC_VERSION_MIN_MACOSX = 0x24
LC_BUILD_VERSION = 0x32

CSMAGIC_EMBEDDED_SIGNATURE = 0xFADE0CC0
CSMAGIC_CODEDIRECTORY = 0xFADE0C02
CS_ADHOC = 0x2
CS_HASHTYPE_SHA1 = 1
CS_HASHTYPE_SHA256 = 2
_HASHES = {CS_HASHTYPE_SHA1: hashlib.sha1, CS_HASHTYPE_SHA256: hashlib.sha256}

# Slices start on 16 KiB boundaries (arm64's page size; lipo uses 2^14 for both architectures).
FAT_ALIGN_LOG2 = 14
# The grown __LINKEDIT segment keeps a whole number of pages in memory.
_VM_PAGE = 0x4000


class MachOError(ValueError):
    """A file is not the Mach-O this module expects; the message names what was found."""


@dataclass(frozen=True)
class LoadCommand:
    cmd: int
    offset: int  # of the command in the file
    size: int


@dataclass(frozen=True)
class Thin:
    """One thin 64-bit Mach-O image (a whole file, or a fat file's slice)."""

    data: bytes
    cputype: int
    commands: tuple[LoadCommand, ...]

    @property
    def arch(self) -> str:
        return CPU_NAMES.get(self.cputype, hex(self.cputype))

    def command(self, cmd: int) -> LoadCommand | None:
        return next((c for c in self.commands if c.cmd == cmd), None)

    @property
    def minos(self) -> tuple[int, int, int] | None:
        """The minimum macOS from LC_BUILD_VERSION (or the older LC_VERSION_MIN_MACOSX)."""
        build = self.command(LC_BUILD_VERSION)
        if build is not None:
            return unpack_version(struct.unpack_from("<I", self.data, build.offset + 12)[0])
        legacy = self.command(LC_VERSION_MIN_MACOSX)
        if legacy is not None:
            return unpack_version(struct.unpack_from("<I", self.data, legacy.offset + 8)[0])
        return None

    def signature(self) -> tuple[int, int] | None:
        """(dataoff, datasize) of the embedded code signature, if any."""
        command = self.command(LC_CODE_SIGNATURE)
        if command is None:
            return None
        dataoff, datasize = struct.unpack_from("<II", self.data, command.offset + 8)
        return dataoff, datasize

    def code_directory(self) -> CodeDirectory | None:
        where = self.signature()
        if where is None:
            return None
        return _read_code_directory(self.data, *where)


@dataclass(frozen=True)
class CodeDirectory:
    offset: int  # in the thin file
    version: int
    flags: int
    identifier: str
    hash_type: int
    page_size: int
    code_limit: int
    special_slots: int
    hashes: tuple[bytes, ...]  # code slots, in page order

    @property
    def is_adhoc(self) -> bool:
        return bool(self.flags & CS_ADHOC)

    def page_hashes_match(self, data: bytes) -> bool:
        """Whether every code slot is the hash of its page of `data` (the thin file)."""
        return self.hashes == _page_hashes(data, self.code_limit, self.page_size, self.hash_type)


def unpack_version(value: int) -> tuple[int, int, int]:
    return (value >> 16, (value >> 8) & 0xFF, value & 0xFF)


def pack_version(version: Sequence[int]) -> int:
    parts = [*version, 0, 0][:3]
    return (parts[0] << 16) | (parts[1] << 8) | parts[2]


def read_thin(data: bytes, *, where: str = "the file") -> Thin:
    if len(data) < 32:
        raise MachOError(f"{where} is too short for a Mach-O header ({len(data)} bytes)")
    magic, cputype, _sub, _filetype, ncmds, sizeofcmds = struct.unpack_from("<IiiIII", data, 0)
    if magic != MH_MAGIC_64:
        raise MachOError(f"{where} is not a 64-bit little-endian Mach-O (magic {magic:#x})")
    commands = []
    offset = 32
    end = 32 + sizeofcmds
    for _ in range(ncmds):
        if offset + 8 > min(end, len(data)):
            raise MachOError(f"{where}: load commands run past their declared size")
        cmd, size = struct.unpack_from("<II", data, offset)
        if size < 8 or offset + size > end:
            raise MachOError(f"{where}: load command {cmd:#x} at {offset} has a bad size {size}")
        commands.append(LoadCommand(cmd, offset, size))
        offset += size
    return Thin(data, cputype & 0xFFFFFFFF, tuple(commands))


def slices(data: bytes) -> list[Thin]:
    """The thin images of a fat file, or the file itself when it is thin."""
    if len(data) >= 8 and struct.unpack_from(">I", data, 0)[0] == FAT_MAGIC:
        count = struct.unpack_from(">I", data, 4)[0]
        found = []
        for index in range(count):
            cputype, _sub, offset, size, _align = struct.unpack_from(">iiIII", data, 8 + 20 * index)
            if offset + size > len(data):
                raise MachOError(f"fat slice {index} ({offset}+{size}) runs past the end of the file ({len(data)})")
            thin = read_thin(data[offset : offset + size], where=f"fat slice {index}")
            if thin.cputype != cputype & 0xFFFFFFFF:
                raise MachOError(
                    f"fat slice {index}: the fat header says cputype {cputype:#x}, the slice {thin.cputype:#x}"
                )
            found.append(thin)
        return found
    return [read_thin(data)]


def fat_binary(thin_files: Sequence[bytes]) -> bytes:
    """A universal file holding `thin_files` as slices (what `lipo -create` writes), in the given order."""
    images = [read_thin(data, where=f"slice {i}") for i, data in enumerate(thin_files)]
    if len({image.cputype for image in images}) != len(images):
        raise MachOError("a universal file cannot hold two slices of the same architecture")
    align = 1 << FAT_ALIGN_LOG2
    header = bytearray(struct.pack(">II", FAT_MAGIC, len(images)))
    offset = _round_up(8 + 20 * len(images), align)
    placed = []
    for image in images:
        placed.append(offset)
        offset = _round_up(offset + len(image.data), align)
    if placed and placed[-1] + len(images[-1].data) > 0xFFFFFFFF:
        raise MachOError("the slices do not fit a 32-bit fat header (over 4 GiB)")
    for image, start in zip(images, placed):
        subtype = struct.unpack_from("<I", image.data, 8)[0]
        header += struct.pack(">IIIII", image.cputype, subtype, start, len(image.data), FAT_ALIGN_LOG2)
    out = bytearray(header)
    for image, start in zip(images, placed):
        out += b"\0" * (start - len(out))
        out += image.data
    return bytes(out)


def set_adhoc_identifier(data: bytes, identifier: str) -> bytes:
    """The thin file with its ad-hoc signature's identifier set to `identifier`, page hashes redone.

    ld (zig's too) names an ad-hoc signature after the file it links, cargo's
    `deps/pyaket_launcher-<hash>`; macOS shows that name (in logs, privacy prompts, the firewall).
    A file without a signature is returned as it is (zig does not sign x86_64).
    """
    if not identifier or "\0" in identifier or not identifier.isprintable():
        raise MachOError(f"{identifier!r} cannot be a code signature identifier")
    thin = read_thin(data)
    where = thin.signature()
    if where is None:
        return data
    dataoff, datasize = where
    old = _read_code_directory(data, dataoff, datasize)
    if not old.is_adhoc:
        raise MachOError(f"the file is signed by an identity ({old.identifier!r}), not ad hoc; not changing it")
    _magic, _length, count = struct.unpack_from(">III", data, dataoff)
    blobs = []
    for index in range(count):
        kind, offset = struct.unpack_from(">II", data, dataoff + 12 + 8 * index)
        blob_magic, blob_length = struct.unpack_from(">II", data, dataoff + offset)
        blob = data[dataoff + offset : dataoff + offset + blob_length]
        blobs.append((kind, _renamed_code_directory(blob, identifier) if blob_magic == CSMAGIC_CODEDIRECTORY else blob))
    superblob = _superblob(blobs)
    grow = max(0, _round_up(len(superblob), 16) - datasize)
    head = bytearray(data[:dataoff])
    if grow:
        _grow_linkedit(thin, head, dataoff, datasize + grow)
    new_size = datasize + grow
    padded = superblob + b"\0" * (new_size - len(superblob))
    # Page hashes cover the file up to the signature, load commands included: redo them last.
    out = bytearray(head) + padded
    return bytes(_rehash(out, dataoff))


def _renamed_code_directory(blob: bytes, identifier: str) -> bytes:
    (_m, _len, version, _flags, hash_offset, ident_offset, n_special, n_code) = struct.unpack_from(">8I", blob, 0)
    hash_size = blob[36]
    if version >= 0x20100 and struct.unpack_from(">I", blob, 44)[0]:
        raise MachOError("the CodeDirectory has a scatter list; not changing it")
    if version >= 0x20200 and struct.unpack_from(">I", blob, 48)[0]:
        raise MachOError("the CodeDirectory names a team; not changing it")
    special_start = hash_offset - n_special * hash_size
    if ident_offset > special_start:
        raise MachOError("the CodeDirectory's identifier does not precede its hashes; not changing it")
    header = bytearray(blob[:ident_offset])
    ident = identifier.encode() + b"\0"
    special = blob[special_start:hash_offset]
    code = blob[hash_offset : hash_offset + n_code * hash_size]
    new_hash_offset = ident_offset + len(ident) + len(special)
    struct.pack_into(">I", header, 4, new_hash_offset + len(code))
    struct.pack_into(">I", header, 16, new_hash_offset)
    return bytes(header) + ident + special + code


def _superblob(blobs: Sequence[tuple[int, bytes]]) -> bytes:
    index = bytearray()
    body = bytearray()
    start = 12 + 8 * len(blobs)
    for kind, blob in blobs:
        index += struct.pack(">II", kind, start + len(body))
        body += blob
    return struct.pack(">III", CSMAGIC_EMBEDDED_SIGNATURE, start + len(body), len(blobs)) + bytes(index) + bytes(body)


def _grow_linkedit(thin: Thin, head: bytearray, dataoff: int, new_size: int) -> None:
    """Make room for a longer signature: it ends the file and the __LINKEDIT segment."""
    command = thin.command(LC_CODE_SIGNATURE)
    assert command is not None
    struct.pack_into("<I", head, command.offset + 12, new_size)
    for segment in thin.commands:
        if (
            segment.cmd != LC_SEGMENT_64
            or thin.data[segment.offset + 8 : segment.offset + 24].rstrip(b"\0") != b"__LINKEDIT"
        ):
            continue
        vmaddr, vmsize, fileoff, filesize = struct.unpack_from("<QQQQ", head, segment.offset + 24)
        if fileoff + filesize != dataoff + struct.unpack_from("<I", thin.data, command.offset + 12)[0]:
            raise MachOError("the code signature does not end __LINKEDIT; not changing it")
        filesize = dataoff + new_size - fileoff
        struct.pack_into(
            "<QQQQ", head, segment.offset + 24, vmaddr, max(vmsize, _round_up(filesize, _VM_PAGE)), fileoff, filesize
        )
        return
    raise MachOError("no __LINKEDIT segment holds the code signature")


def _rehash(out: bytearray, dataoff: int) -> bytearray:
    _magic, _length, count = struct.unpack_from(">III", out, dataoff)
    for index in range(count):
        _kind, offset = struct.unpack_from(">II", out, dataoff + 12 + 8 * index)
        start = dataoff + offset
        if struct.unpack_from(">I", out, start)[0] != CSMAGIC_CODEDIRECTORY:
            continue
        hash_offset, _ident, _special, n_code, code_limit = struct.unpack_from(">5I", out, start + 16)
        hash_type, page_log2 = out[start + 37], out[start + 39]
        hashes = _page_hashes(bytes(out[:dataoff]), code_limit, page_log2, hash_type)
        if len(hashes) != n_code:
            raise MachOError(f"the CodeDirectory has {n_code} code slots for {len(hashes)} pages")
        out[start + hash_offset : start + hash_offset + len(b"".join(hashes))] = b"".join(hashes)
    return out


def _page_hashes(data: bytes, code_limit: int, page_log2: int, hash_type: int) -> tuple[bytes, ...]:
    if hash_type not in _HASHES:
        raise MachOError(f"unknown code signature hash type {hash_type}")
    page = 1 << page_log2 if page_log2 else code_limit
    hasher = _HASHES[hash_type]
    return tuple(hasher(data[start : min(start + page, code_limit)]).digest() for start in range(0, code_limit, page))


def _read_code_directory(data: bytes, dataoff: int, datasize: int) -> CodeDirectory:
    if dataoff + datasize > len(data):
        raise MachOError(f"the code signature ({dataoff}+{datasize}) runs past the end of the file")
    magic, _length, count = struct.unpack_from(">III", data, dataoff)
    if magic != CSMAGIC_EMBEDDED_SIGNATURE:
        raise MachOError(f"the code signature has magic {magic:#x}, not an embedded signature")
    for index in range(count):
        _kind, offset = struct.unpack_from(">II", data, dataoff + 12 + 8 * index)
        start = dataoff + offset
        if struct.unpack_from(">I", data, start)[0] != CSMAGIC_CODEDIRECTORY:
            continue
        (_m, _len, version, flags, hash_offset, ident_offset, n_special, n_code, code_limit) = struct.unpack_from(
            ">9I", data, start
        )
        hash_size, hash_type, _platform, page_log2 = data[start + 36 : start + 40]
        identifier = data[start + ident_offset : data.index(b"\0", start + ident_offset)].decode()
        first = start + hash_offset
        hashes = tuple(data[first + i * hash_size : first + (i + 1) * hash_size] for i in range(n_code))
        return CodeDirectory(start, version, flags, identifier, hash_type, page_log2, code_limit, n_special, hashes)
    raise MachOError("the code signature has no CodeDirectory")


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align

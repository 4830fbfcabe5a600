"""Windows resources for the launcher: version information (from project metadata) and an optional icon.

Written as a compiled resource file (`.res`, the format `rc.exe` / `llvm-rc` produce) by this module, so
no resource compiler is needed; the launcher's build.rs hands it to the linker
(`PYAKET_WINDOWS_RES`). lld (zig's linker for `*-windows-gnu`, cargo-xwin's for `*-windows-msvc`) and
MSVC's link.exe take `.res` files as they are; GNU ld (plain cargo for `*-windows-gnu`, e.g. on a
Windows host with the GNU toolchain) does not, so those builds go without resources (with a warning).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from hatch_pyaket import fsio
from hatch_pyaket.errors import BuildError
from hatch_pyaket.targets import Target

if TYPE_CHECKING:  # config.py imports this module
    from hatch_pyaket.config import Entry, PyaketConfig

ENV_RES = "PYAKET_WINDOWS_RES"
RT_ICON = 3
RT_GROUP_ICON = 14
RT_VERSION = 16
LANG_EN_US = 0x0409
CODEPAGE_UNICODE = 1200
ICON_GROUP_ID = 1
_FLAGS_VERSION = 0x0030  # MOVEABLE | PURE, as llvm-rc writes them
_FLAGS_ICON = 0x1010  # MOVEABLE | DISCARDABLE
_FLAGS_GROUP = 0x1030  # MOVEABLE | PURE | DISCARDABLE


@dataclass(frozen=True)
class VersionInfo:
    product_name: str
    version: str
    description: str
    internal_name: str
    original_filename: str


def links_res_files(target: Target, tool: str) -> bool:
    """Whether the linker of this build takes a `.res` file: lld and link.exe do, GNU ld does not."""
    if target.os != "windows":
        return False
    return target.libc == "msvc" or tool == "zigbuild"


def version_numbers(version: str) -> tuple[int, int, int, int]:
    """FILEVERSION's four 16-bit numbers from a PEP 440 version (its release part; 0 where absent)."""
    try:
        release = Version(version).release
    except InvalidVersion:
        release = ()
    numbers = [min(part, 0xFFFF) for part in release[:4]]
    return tuple(numbers + [0] * (4 - len(numbers)))  # type: ignore[return-value]


def check_icon(path: Path) -> str | None:
    """Why `path` is not a usable .ico file, or None."""
    try:
        head = path.read_bytes()[:6]
    except OSError as error:
        return f"cannot read {path}: {error.strerror or error}"
    if len(head) < 6 or head[:4] != b"\0\0\1\0" or struct.unpack("<H", head[4:6])[0] == 0:
        return f"{path} is not a Windows icon (.ico) file"
    return None


def res_file(info: VersionInfo, icon: Path | None = None) -> bytes:
    """The `.res` bytes: an empty header entry, the icon images and group (if any), then VS_VERSIONINFO."""
    out = bytearray(_entry(0, 0, b"", flags=0, language=0))
    if icon is not None:
        images = _icon_images(icon)
        group = bytearray(struct.pack("<HHH", 0, 1, len(images)))
        for number, (header, data) in enumerate(images, start=1):
            out += _entry(RT_ICON, number, data, flags=_FLAGS_ICON)
            group += header[:12] + struct.pack("<H", number)  # the .ico entry, with the image offset as its id
        out += _entry(RT_GROUP_ICON, ICON_GROUP_ID, bytes(group), flags=_FLAGS_GROUP)
    out += _entry(RT_VERSION, 1, _version_info(info), flags=_FLAGS_VERSION)
    return bytes(out)


def cargo_env(
    config: PyaketConfig,
    app: str,
    version: str,
    target: Target,
    entry: Entry,
    tool: str,
    folder: Path,
    report: Callable[[str], None],
) -> dict[str, str]:
    """The launcher build's environment for this executable's resources ({} where there are none)."""
    if target.os != "windows":
        return {}
    if not links_res_files(target, tool):
        if config.icon is not None:
            report(
                f"pyaket: WARNING: {target.name} built with {tool} links with GNU ld, which cannot take resources: "
                f"the executable gets no icon ({config.icon.name}) and no version information; "
                'build it with tool = "zigbuild" to have them'
            )
        return {}
    info = VersionInfo(
        product_name=app,
        version=version,
        description=config.description or app,
        internal_name=entry.name,
        original_filename=f"{entry.name}-{version}-{target.name}{target.exe_suffix}",
    )
    return {ENV_RES: str(write_res(folder, f"{entry.name}-{target.name}", info, config.icon))}


def write_res(folder: Path, name: str, info: VersionInfo, icon: Path | None) -> Path:
    """`<folder>/<name>.res`, rewritten only when its content changes (so cargo does not relink for nothing)."""
    content = res_file(info, icon)
    path = folder / f"{name}.res"
    fsio.write_if_changed(path, content)
    return path


def _icon_images(icon: Path) -> list[tuple[bytes, bytes]]:
    """(16-byte ICONDIRENTRY, image bytes) per image of an .ico file."""
    data = icon.read_bytes()
    problem = check_icon(icon)
    count = struct.unpack_from("<H", data, 4)[0] if problem is None else 0
    images = []
    for index in range(count):
        header = data[6 + 16 * index : 22 + 16 * index]
        if len(header) < 16:
            problem = f"{icon} is truncated (image {index + 1} of {count})"
            break
        size, offset = struct.unpack_from("<II", header, 8)
        if offset + size > len(data):
            problem = f"{icon} is truncated (image {index + 1} of {count})"
            break
        images.append((header, data[offset : offset + size]))
    if problem:
        raise BuildError(f"icon: {problem}")
    return images


def _utf16z(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def _pad4(data: bytearray) -> None:
    data += b"\0" * (-len(data) % 4)


def _block(key: str, value: bytes = b"", children: Iterable[bytes] = (), *, text: bool, value_length: int = 0) -> bytes:
    """One VS_VERSIONINFO node: wLength, wValueLength, wType, szKey, padding, value, padding, children."""
    out = bytearray(struct.pack("<HHH", 0, value_length, 1 if text else 0))
    out += _utf16z(key)
    _pad4(out)
    out += value
    for child in children:
        _pad4(out)
        out += child
    struct.pack_into("<H", out, 0, len(out))
    return bytes(out)


def _string(key: str, value: str) -> bytes:
    return _block(key, _utf16z(value), text=True, value_length=len(value) + 1)


def _version_info(info: VersionInfo) -> bytes:
    major, minor, patch, build = version_numbers(info.version)
    most, least = (major << 16) | minor, (patch << 16) | build
    fixed = struct.pack(
        "<13I",
        0xFEEF04BD,  # signature
        0x00010000,  # structure version
        most,
        least,  # file version
        most,
        least,  # product version
        0x3F,  # file flags mask
        0,  # file flags
        0x00040004,  # VOS_NT_WINDOWS32
        0x1,  # VFT_APP
        0,
        0,
        0,  # subtype, date
    )
    strings = [
        ("FileDescription", info.description),
        ("FileVersion", info.version),
        ("InternalName", info.internal_name),
        ("OriginalFilename", info.original_filename),
        ("ProductName", info.product_name),
        ("ProductVersion", info.version),
    ]
    table = _block(
        f"{LANG_EN_US:04x}{CODEPAGE_UNICODE:04x}", children=[_string(k, v) for k, v in strings if v], text=True
    )
    translation = _block("Translation", struct.pack("<HH", LANG_EN_US, CODEPAGE_UNICODE), text=False, value_length=4)
    return _block(
        "VS_VERSION_INFO",
        fixed,
        [
            _block("StringFileInfo", children=[table], text=True),
            _block("VarFileInfo", children=[translation], text=True),
        ],
        text=False,
        value_length=len(fixed),
    )


def _entry(type_id: int, name_id: int, data: bytes, *, flags: int, language: int = LANG_EN_US) -> bytes:
    """One resource of a .res file: RESOURCEHEADER (numeric type and name), then the data, padded to 4."""
    header = struct.pack("<II", len(data), 32) + struct.pack("<HHHH", 0xFFFF, type_id, 0xFFFF, name_id)
    header += struct.pack("<IHHII", 0, flags, language, 0, 0)
    out = bytearray(header + data)
    _pad4(out)
    return bytes(out)

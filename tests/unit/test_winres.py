"""Windows resources (.res) written without a resource compiler: compared with llvm-rc's output where it exists."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from hatch_pyaket import winres
from hatch_pyaket.config import parse_config
from hatch_pyaket.errors import ConfigError
from hatch_pyaket.targets import parse_target
from tests.unit.test_config import facts

HOST = "x86_64-unknown-linux-gnu"
INFO = winres.VersionInfo(
    product_name="example-app",
    version="1.2.3",
    description="A small CLI",
    internal_name="example-app",
    original_filename="example-app-1.2.3-x86_64-pc-windows-gnu.exe",
)


def _png(size: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + b"\x20\x60\xc0\xff" * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def make_icon(path: Path, sizes: tuple[int, ...] = (16, 32)) -> Path:
    """A real .ico file holding PNG images (as Windows Vista and later read them)."""
    images = [_png(size) for size in sizes]
    data = bytearray(struct.pack("<HHH", 0, 1, len(images)))
    offset = 6 + 16 * len(images)
    for size, image in zip(sizes, images):
        data += struct.pack("<BBBBHHII", size % 256, size % 256, 0, 0, 1, 32, len(image), offset)
        offset += len(image)
    for image in images:
        data += image
    path.write_bytes(bytes(data))
    return path


def _resources(res: bytes) -> list[tuple[int, int, bytes]]:
    """(type id, name id, data) of each entry of a .res file with numeric types and names."""
    found, offset = [], 0
    while offset < len(res):
        size, header = struct.unpack_from("<II", res, offset)
        ff_type, type_id, ff_name, name_id = struct.unpack_from("<HHHH", res, offset + 8)
        assert (ff_type, ff_name) == (0xFFFF, 0xFFFF) and header == 32
        found.append((type_id, name_id, res[offset + header : offset + header + size]))
        offset += header + size + (-size % 4)
    return found


def test_the_res_file_holds_the_version_information(tmp_path: Path) -> None:
    entries = _resources(winres.res_file(INFO))
    assert [(t, n) for t, n, _ in entries] == [(0, 0), (winres.RT_VERSION, 1)]
    version = entries[1][2]
    assert struct.unpack_from("<H", version, 0)[0] == len(version)
    assert "VS_VERSION_INFO".encode("utf-16-le") in version
    fixed = version.index(struct.pack("<I", 0xFEEF04BD))
    assert struct.unpack_from("<II", version, fixed + 8) == ((1 << 16) | 2, 3 << 16)
    for key, value in [("ProductName", "example-app"), ("FileVersion", "1.2.3"), ("FileDescription", "A small CLI")]:
        assert f"{key}\0".encode("utf-16-le") in version
        assert f"{value}\0".encode("utf-16-le") in version


def test_the_icon_becomes_icon_images_and_a_group(tmp_path: Path) -> None:
    icon = make_icon(tmp_path / "app.ico")
    entries = _resources(winres.res_file(INFO, icon))
    assert [(t, n) for t, n, _ in entries] == [(0, 0), (3, 1), (3, 2), (14, 1), (16, 1)]
    assert entries[1][2] == _png(16) and entries[2][2] == _png(32)
    reserved, kind, count = struct.unpack_from("<HHH", entries[3][2], 0)
    assert (reserved, kind, count) == (0, 1, 2)
    # GRPICONDIRENTRY: the .ico entry's first 12 bytes (width first), then the RT_ICON id.
    widths = [entries[3][2][6 + 14 * i] for i in range(2)]
    ids = [struct.unpack_from("<H", entries[3][2], 6 + 14 * i + 12)[0] for i in range(2)]
    assert (widths, ids) == ([16, 32], [1, 2])


@pytest.mark.skipif(
    not shutil.which("llvm-rc"), reason="llvm-rc is not installed (the byte-for-byte comparison needs it)"
)
def test_byte_for_byte_what_llvm_rc_writes(tmp_path: Path) -> None:
    make_icon(tmp_path / "app.ico")
    strings = "\n".join(
        f'      VALUE "{key}", "{value}"'
        for key, value in [
            ("FileDescription", INFO.description),
            ("FileVersion", INFO.version),
            ("InternalName", INFO.internal_name),
            ("OriginalFilename", INFO.original_filename),
            ("ProductName", INFO.product_name),
            ("ProductVersion", INFO.version),
        ]
    )
    (tmp_path / "app.rc").write_text(
        'LANGUAGE 9, 1\n1 ICON "app.ico"\n1 VERSIONINFO\nFILEVERSION 1,2,3,0\nPRODUCTVERSION 1,2,3,0\n'
        "FILEFLAGSMASK 0x3f\nFILEOS 0x40004\nFILETYPE 0x1\nBEGIN\n"
        f'  BLOCK "StringFileInfo"\n  BEGIN\n    BLOCK "040904b0"\n    BEGIN\n{strings}\n    END\n  END\n'
        '  BLOCK "VarFileInfo"\n  BEGIN\n    VALUE "Translation", 0x409, 1200\n  END\nEND\n'
    )
    subprocess.run(["llvm-rc", "-no-cpp", "-fo", "app.res", "app.rc"], cwd=tmp_path, check=True, capture_output=True)
    assert winres.res_file(INFO, tmp_path / "app.ico") == (tmp_path / "app.res").read_bytes()


@pytest.mark.parametrize(
    ("version", "numbers"),
    [("1.2.3", (1, 2, 3, 0)), ("2", (2, 0, 0, 0)), ("1.0.0rc1", (1, 0, 0, 0)), ("1.2.3.4.5", (1, 2, 3, 4)),
     ("70000.1", (0xFFFF, 1, 0, 0)), ("not-a-version", (0, 0, 0, 0))],
)  # fmt: skip
def test_version_numbers(version: str, numbers: tuple[int, int, int, int]) -> None:
    assert winres.version_numbers(version) == numbers


def test_which_builds_take_resources() -> None:
    def takes(target: str, tool: str) -> bool:
        return winres.links_res_files(parse_target(target, HOST), tool)

    assert takes("x86_64-pc-windows-gnu", "zigbuild")  # zig's lld
    assert takes("x86_64-pc-windows-msvc", "xwin") and takes("x86_64-pc-windows-msvc", "cargo")  # lld-link, link.exe
    assert not takes("x86_64-pc-windows-gnu", "cargo")  # GNU ld
    assert not takes(HOST, "cargo")


def test_cargo_env_writes_the_res_only_for_windows(tmp_path: Path) -> None:
    icon = make_icon(tmp_path / "app.ico")
    config = parse_config(
        {"targets": ["host", "x86_64-pc-windows-gnu"], "icon": "app.ico"},
        facts(description="A small CLI"),
        host_triple=HOST,
        root=tmp_path,
    )
    assert config.icon == icon and config.description == "A small CLI"
    linux, windows = config.targets
    entry = config.entries[0]
    messages: list[str] = []
    assert winres.cargo_env(config, "example-app", "1.0.0", linux, entry, "cargo", tmp_path, messages.append) == {}
    env = winres.cargo_env(config, "example-app", "1.0.0", windows, entry, "zigbuild", tmp_path, messages.append)
    res = Path(env[winres.ENV_RES])
    assert res.read_bytes() == winres.res_file(
        winres.VersionInfo(
            "example-app", "1.0.0", "A small CLI", "example-app", "example-app-1.0.0-x86_64-pc-windows-gnu.exe"
        ),
        icon,
    )
    assert messages == []
    assert winres.cargo_env(config, "example-app", "1.0.0", windows, entry, "cargo", tmp_path, messages.append) == {}
    assert len(messages) == 1 and "GNU ld" in messages[0] and 'tool = "zigbuild"' in messages[0]


def test_a_bad_icon_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(_png(16))
    for value, message in [
        ("missing.ico", "'missing.ico': no such file"),
        ("logo.png", f"{tmp_path / 'logo.png'} is not a Windows icon (.ico) file; convert it to .ico"),
    ]:
        with pytest.raises(ConfigError) as info:
            parse_config({"icon": value}, facts(), host_triple=HOST, root=tmp_path)
        assert f"tool.hatch.build.hooks.pyaket.icon: {message}" in str(info.value)

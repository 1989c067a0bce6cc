"""Memory limits on user data: decompression bombs and CSVs too large for memory fail fast."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from common.errors import InputError
from datasets import images as image_module
from datasets import limits
from datasets.image_decoding import open_header
from datasets.images import load_images, read_images
from datasets.registry import load_configured, load_tabular
from tasks.config import DataConfig, validate
from tests.helpers import assert_cli_error, run_cli


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` RGB pixels in a few dozen bytes (never decodable:
    its pixel data is a stub), as a decompression bomb's header would."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def image_folder(root, per_class: int = 8, size: int = 12):
    rng = np.random.default_rng(0)
    for name in ("ant", "bee"):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


@pytest.fixture
def bomb_folder(tmp_path):
    root = image_folder(tmp_path / "pets")
    (root / "bee" / "bomb.png").write_bytes(png_header(50_000, 50_000))
    return root


@pytest.fixture
def no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(image_module, "_decode", refuse)


# Decompression bombs -------------------------------------------------------------------------


def test_a_decompression_bomb_is_refused_before_anything_is_decoded(bomb_folder, no_decoding):
    with pytest.raises(InputError) as info:
        load_images(str(bomb_folder))
    message = str(info.value)
    for fragment in (f"image '{bomb_folder / 'bee' / 'bomb.png'}'", "50000x50000 pixels",
                     "(2,500,000,000)", "limit of 89,478,485 (data.max_image_pixels)",
                     "decompression bombs", "7.5 GB", "--set data.max_image_pixels=2500000000"):
        assert fragment in message, (fragment, message)
    assert len(message.splitlines()) == 1


def test_the_pixel_limit_is_a_setting(tmp_path):
    root = image_folder(tmp_path / "pets")  # 12 x 12 = 144 pixels each
    with pytest.raises(InputError, match=r"is 12x12 pixels \(144\), more than the limit of 143"):
        load_configured(DataConfig(data=str(root), max_image_pixels=143), "multiclass", 0,
                        "images")
    splits = load_configured(DataConfig(data=str(root), max_image_pixels=144), "multiclass", 0,
                             "images")
    assert splits.image_size == (12, 12)


def test_skip_bad_images_skips_a_bomb_with_a_warning(bomb_folder, capsys):
    splits = load_images(str(bomb_folder), skip_bad_images=True)
    assert splits.skipped == [str(bomb_folder / "bee" / "bomb.png")]
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1
    assert "skipped image" in warning[0] and "50000x50000 pixels" in warning[0]


def test_a_bomb_in_the_test_folder_is_refused(tmp_path):
    train = image_folder(tmp_path / "train")
    test = tmp_path / "test"
    (test / "ant").mkdir(parents=True)
    (test / "ant" / "bomb.png").write_bytes(png_header(20_000, 20_000))
    with pytest.raises(InputError, match=r"test/ant/bomb.png' is 20000x20000 pixels"):
        load_images(str(train), test_data=str(test))


def test_prediction_refuses_a_bomb_too(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(50_000, 50_000))
    with pytest.raises(InputError, match="50000x50000 pixels"):
        read_images([path], (12, 12), 3)


def test_pillow_reads_the_header_of_an_image_above_its_own_limit(tmp_path):
    # Pillow alone raises DecompressionBombError above 2 x its limit, before saying the size; the
    # configured limit decides instead, and Pillow's global setting is left as it was.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(50_000, 50_000))
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with open_header(path) as image:
        assert image.size == (50_000, 50_000)
    assert Image.MAX_IMAGE_PIXELS == before


# CSVs too large for memory --------------------------------------------------------------------


def _csv(tmp_path, name: str = "big.csv"):
    path = tmp_path / name
    path.write_text("x,y\n" + "".join(f"{i},{'yes' if i % 2 else 'no'}\n" for i in range(40)))
    return path


def test_a_csv_too_large_for_memory_points_to_stream(tmp_path, monkeypatch):
    path = _csv(tmp_path)  # 254 bytes: about 2.5 KB in memory
    assert path.stat().st_size == 254
    monkeypatch.setattr(limits, "available_memory", lambda: 2_000)
    with pytest.raises(InputError) as info:
        load_tabular(str(path), "binary", target="y")
    message = str(info.value)
    for fragment in (f"data file '{path}' is 254 bytes", "about 2.5 KB (10x the file)",
                     "more than 0.8 of the 2.0 KB of memory available", "Pass --stream",
                     "--set data.max_memory_fraction=F"):
        assert fragment in message, (fragment, message)


def test_the_memory_limit_is_a_setting(tmp_path, monkeypatch):
    path = _csv(tmp_path)
    monkeypatch.setattr(limits, "available_memory", lambda: 2_000)
    splits = load_configured(DataConfig(data=str(path), target="y", max_memory_fraction=1.5),
                             "binary", 0)
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 40


def test_a_test_csv_too_large_for_memory_is_refused(tmp_path, monkeypatch):
    data = _csv(tmp_path, "small.csv")
    test = tmp_path / "holdout.csv"
    test.write_text("x,y\n" + "1,yes\n" * 500)
    monkeypatch.setattr(limits, "available_memory", lambda: 30_000)
    with pytest.raises(InputError, match=r"data file '.*holdout.csv' is 3.0 KB"):
        load_tabular(str(data), "binary", target="y", test_data=str(test))


def test_memory_is_not_checked_where_the_system_does_not_say(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "available_memory", lambda: None)
    assert len(load_tabular(str(_csv(tmp_path)), "binary", target="y").train) > 0


@pytest.mark.parametrize(("key", "value"), [("max_memory_fraction", 0.0),
                                            ("max_image_pixels", 0)])
def test_limits_must_be_positive(key, value):
    from tasks.binary_classify import default_config

    config = default_config()
    setattr(config.data, key, value)
    with pytest.raises(InputError, match=f"data.{key} must be"):
        validate(config)


def _fake_system(tmp_path, meminfo_kb=None, cgroup=None, v1=None, stat=""):
    proc, cgroups = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (cgroups / "memory").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("0::/job\n" if cgroup else "")
    if meminfo_kb is not None:
        (proc / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {meminfo_kb} kB\n")
    if cgroup:
        (cgroups / "job").mkdir()
        limit, used = cgroup
        (cgroups / "job" / "memory.max").write_text(f"{limit}\n")
        (cgroups / "job" / "memory.current").write_text(f"{used}\n")
        (cgroups / "job" / "memory.stat").write_text(stat)
    if v1:
        limit, used = v1
        (cgroups / "memory" / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (cgroups / "memory" / "memory.usage_in_bytes").write_text(f"{used}\n")
        (cgroups / "memory" / "memory.stat").write_text(stat)
    return {"proc_root": proc, "cgroup_root": cgroups}


def test_available_memory_is_the_smaller_of_machine_and_container(tmp_path):
    machine = _fake_system(tmp_path / "a", meminfo_kb=4_000_000)
    assert limits.available_memory(**machine) == 4_096_000_000
    v2 = _fake_system(tmp_path / "b", meminfo_kb=4_000_000, cgroup=(2_000_000_000, 500_000_000),
                      stat="anon 1\ninactive_file 100000000\n")
    assert limits.available_memory(**v2) == 1_600_000_000
    unlimited = _fake_system(tmp_path / "c", meminfo_kb=4_000, cgroup=("max", 500))
    assert limits.available_memory(**unlimited) == 4_096_000
    v1 = _fake_system(tmp_path / "d", meminfo_kb=4_000_000, v1=(1_000_000_000, 400_000_000),
                      stat="total_inactive_file 50000000\n")
    assert limits.available_memory(**v1) == 650_000_000
    v1_unlimited = _fake_system(tmp_path / "e", meminfo_kb=4_000, v1=(2**63 - 4096, 1))
    assert limits.available_memory(**v1_unlimited) == 4_096_000


def test_available_memory_falls_back_to_sysconf(tmp_path, monkeypatch):
    values = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(limits.os, "sysconf", lambda name: values[name])
    assert limits.available_memory(**_fake_system(tmp_path)) == 4_096_000


def test_format_bytes():
    assert [limits.format_bytes(n) for n in (0, 999, 1000, 1_536_000, 7.5e9, 3e15)] == [
        "0 bytes", "999 bytes", "1.0 KB", "1.5 MB", "7.5 GB", "3000.0 TB"]


# The same through the real CLI ----------------------------------------------------------------


@pytest.mark.slow
def test_cli_refuses_a_bomb_in_one_line_and_writes_nothing(bomb_folder, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("tasks.image_classify", "--data", bomb_folder, "--epochs", "1",
                     "--export", "none", "--run-dir", run_dir, cwd=tmp_path)
    assert_cli_error(result, "bomb.png' is 50000x50000 pixels", "data.max_image_pixels")
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("run")]


@pytest.mark.slow
def test_cli_refuses_a_csv_too_large_in_one_line_and_writes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("tasks.binary_classify", "--data", _csv(tmp_path), "--target", "y",
                     "--set", "data.max_memory_fraction=1e-12", "--run-dir", run_dir,
                     cwd=tmp_path)
    assert_cli_error(result, "big.csv' is 254 bytes", "Pass --stream")
    assert not [path for path in tmp_path.iterdir() if path.name.startswith("run")]

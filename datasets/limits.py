"""Memory limits on user data: a CSV read into memory, and the pixel count of one image.

Both checks run before anything large is allocated, so a file that would exhaust memory stops
the run in a second with an `InputError` that says what to do, instead of the kernel's
out-of-memory killer ending it minutes later with no message.

* A CSV read into pandas takes many times its size in memory: loading and splitting peaked at
  4.5x the file for a table of floats, 11x for a mixed table and 21x for small integers (measured
  with `ru_maxrss`, 400,000 rows, pandas 3.1), and training adds its own copies. The estimate is
  `CSV_MEMORY_FACTOR` times the file size; it must fit in `data.max_memory_fraction` of the
  memory available. Larger files stream (`--stream`), never loaded whole.
* An image's header says its size before any pixel is decoded. Above `data.max_image_pixels`
  (Pillow's own default limit, `PIL.Image.MAX_IMAGE_PIXELS`, 89,478,485 pixels: 0.25 GiB as
  RGB bytes, four times that as the float32 TensorFlow resizes in) the file is refused: a small
  PNG can claim 50,000 x 50,000 pixels and decompress to 7.5 GB (a decompression bomb).
"""

from __future__ import annotations

import os
from pathlib import Path

from common.errors import InputError

# Estimated memory of a CSV read into pandas and split, as a multiple of its file size (measured
# 4.5x-21x, see the module docstring).
CSV_MEMORY_FACTOR = 10
DEFAULT_MAX_MEMORY_FRACTION = 0.8
# Pillow's default `Image.MAX_IMAGE_PIXELS` (1024 * 1024 * 1024 // 4 // 3), the size above which
# Pillow itself starts warning of a decompression bomb.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485


def format_bytes(count: float) -> str:
    """`1536` -> `'1.5 KB'` (powers of 1000, as file managers show sizes)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(count) < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _read_number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, *values = line.split()
            if name == key and values and values[0].isdigit():
                return int(values[0])
    except OSError:
        pass
    return 0


def _cgroup_available(cgroup_root: Path, proc_root: Path) -> int | None:
    """Memory left under the process's cgroup limit (containers, Kubernetes), if it has one.

    Reclaimable page cache (`inactive_file`) counts as available, as Kubernetes counts it.
    """
    try:
        lines = (proc_root / "self" / "cgroup").read_text().splitlines()
    except OSError:
        lines = []
    # cgroup v2: one line `0::/path`; the limit file is in that folder (or the root's).
    v2 = [line.split("::", 1)[1] for line in lines if line.startswith("0::")]
    for folder in ([cgroup_root / v2[0].lstrip("/")] if v2 else []) + [cgroup_root]:
        limit = _read_number(folder / "memory.max")  # "max" (no limit) reads as None
        used = _read_number(folder / "memory.current")
        if limit is not None and used is not None:
            return max(0, limit - used + _stat_value(folder / "memory.stat", "inactive_file"))
    # cgroup v1: no limit set reads as a huge number, larger than the machine's memory.
    folder = cgroup_root / "memory"
    limit = _read_number(folder / "memory.limit_in_bytes")
    used = _read_number(folder / "memory.usage_in_bytes")
    if limit is not None and used is not None and limit < 1 << 60:
        return max(0, limit - used + _stat_value(folder / "memory.stat", "total_inactive_file"))
    return None


def available_memory(proc_root: Path = Path("/proc"),
                     cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes of memory this process can still take, or None where the system does not say.

    The smaller of the machine's available memory (`MemAvailable` in /proc/meminfo, else
    `os.sysconf`'s available pages) and what is left under a cgroup memory limit.

    Args:
        proc_root: The proc filesystem (a parameter for tests).
        cgroup_root: The cgroup filesystem (a parameter for tests).
    """
    machine = _stat_value(proc_root / "meminfo", "MemAvailable:") * 1024 or None
    if machine is None:
        try:
            machine = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):  # not on macOS or Windows
            machine = None
    limits = [value for value in (machine, _cgroup_available(cgroup_root, proc_root))
              if value is not None]
    return min(limits, default=None)


def check_csv_fits_memory(path: Path, max_memory_fraction: float) -> None:
    """Refuses a CSV whose in-memory estimate exceeds the allowed share of available memory.

    Args:
        path: An existing CSV file.
        max_memory_fraction: `DataConfig.max_memory_fraction`.

    Raises:
        InputError: Naming the file size, the estimate, the memory available and `--stream`.
    """
    size = path.stat().st_size
    available = available_memory()
    if available is None or size * CSV_MEMORY_FACTOR <= max_memory_fraction * available:
        return
    raise InputError(
        f"data file '{path}' is {format_bytes(size)}; read into memory it would take about "
        f"{format_bytes(size * CSV_MEMORY_FACTOR)} ({CSV_MEMORY_FACTOR}x the file), more than "
        f"{max_memory_fraction:g} of the {format_bytes(available)} of memory available. Pass "
        "--stream to train on it without loading it (streamed CSV shards, see README), or "
        "raise the limit with --set data.max_memory_fraction=F if it fits.")


def check_image_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    """Refuses an image whose header claims more pixels than `max_pixels`, before decoding it.

    Raises:
        InputError: Naming the file, its size, the limit and how to raise it.
    """
    if width * height <= max_pixels:
        return
    raise InputError(
        f"image '{path}' is {width}x{height} pixels ({width * height:,}), more than the limit "
        f"of {max_pixels:,} (data.max_image_pixels) that guards memory against decompression "
        f"bombs: decoding it would take about {format_bytes(width * height * 3)} as RGB bytes. "
        "Shrink the image, remove it, or raise the limit with --set "
        f"data.max_image_pixels={width * height} if it is genuine.")

"""Replace a marked section of docs/BENCHMARKS.md with a benchmark's fresh table."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def write_section(name: str, text: str, doc: Path = DOC) -> None:
    """Puts `text` between `<!-- name:start -->` and `<!-- name:end -->` (appended if absent)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    document = doc.read_text()
    if start not in document:
        document = f"{document.rstrip()}\n\n{start}\n{end}\n"
    before, _, rest = document.partition(start)
    _, _, after = rest.partition(end)
    doc.write_text(f"{before}{start}\n{text}\n{end}{after}")

"""The report's text: aligned tables and figures as people read them."""

from __future__ import annotations


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, ["-" * w for w in widths], *rows]
    )


def number(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def percent(share: float | None) -> str:
    if share is None:
        return ""
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"


def cpu(spent: dict[str, float]) -> str:
    """CPU µs per request as product/PostgreSQL/wrk/rest of the machine."""
    if not spent:
        return ""
    return "/".join(f"{spent[k]:.0f}" for k in ("product", "postgres", "wrk", "other"))

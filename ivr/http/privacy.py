"""Caller numbers on a screen across a room: never in full, the last four digits at most."""

from __future__ import annotations

MASK = "•••"


def mask_number(number: str) -> str:
    """'+7 701 123 45 67' -> '•••4567'; a short number keeps under half its digits, so none is shown whole."""
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits:
        return MASK
    keep = 4 if len(digits) > 8 else len(digits) // 2
    return MASK + digits[len(digits) - keep :] if keep else MASK

"""What the sans-I/O protocol parsers (FastAGI, AudioSocket) share."""

from __future__ import annotations


class NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


# next_event()'s answer when the bytes received so far hold no complete event.
NEED_DATA = NeedData()

"""``THROTTLE_RATES``: its scopes, defaults and syntax.

Plain Python: ``canvas/settings.py`` imports it, so it may not import DRF or read settings.
"""

from __future__ import annotations

SCOPES = ("auth", "start", "chat", "keys")
DEFAULT_RATES = "auth=10/min,start=600/min,chat=60/min,keys=60/min"
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rates(text: str) -> dict[str, str | None]:
    """``THROTTLE_RATES`` as DRF rates per scope.

    ``auth=10/min,chat=60/min``: a scope left out keeps its default, ``scope=off`` turns one
    scope off, and an empty value turns every throttle off. Raises ``ValueError`` naming the
    part it cannot read.
    """
    if not text.strip():
        return dict.fromkeys(SCOPES)
    rates: dict[str, str | None] = {} if text == DEFAULT_RATES else parse_rates(DEFAULT_RATES)
    for part in text.split(","):
        scope, _, rate = (piece.strip() for piece in part.partition("="))
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r} in {part!r} (scopes: {', '.join(SCOPES)})")
        if rate.lower() in ("off", "none", ""):
            rates[scope] = None
            continue
        count, _, period = rate.partition("/")
        if not count.isdigit() or not period or period[0] not in _PERIODS:
            raise ValueError(f"{part!r} is not <scope>=<count>/<sec|min|hour|day>")
        rates[scope] = f"{int(count)}/{period}"
    return rates

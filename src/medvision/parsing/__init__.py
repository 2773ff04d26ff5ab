"""Answer parsers: model text -> :class:`ParsedAnswer` (values, or a status and a reason).

* :func:`parse_last_k`: the official last-k rule, ``paper-v1`` (GitHub c221615) or
  ``official`` (PyPI 1.2.1), reproduced exactly.
* :func:`parse_robust`: the strict protocol's parser (answer tags, boxed, JSON, units, pixel
  boxes, refusals).
"""

from medvision.parsing.official import OfficialVersion, parse_last_k
from medvision.parsing.robust import parse_robust
from medvision.parsing.types import ParsedAnswer, ParseStatus

__all__ = ["OfficialVersion", "ParseStatus", "ParsedAnswer", "parse_last_k", "parse_robust"]

"""Release hygiene for a model bundle: nothing that leaves with a model may carry a participant id of its training
cohort (UK Biobank's rules, and any cohort's: an id links a model to a person's record).

``export`` checks every text it writes (config.json, the model card, the safetensors metadata and tensor names, the
ONNX graph's strings, the bundle's file and folder names) against the ids of the training cache, and refuses to
write a bundle in which any appears. An id matches as a whole token between non-alphanumerics: ``1234567`` is found in ``run_1234567``,
``1234567.json`` or ``"1234567"``, not inside ``12345678``, ``x1234567`` or ``0.1234567``. The names a user or a cohort chose (the run's,
the cache's, the bundle folder's) are checked for every id; the text the kit generates around them (counts, sizes,
layer numbers: ``n = 150``, ``blocks.1``) for every id but plain numbers shorter than ``MIN_GENERATED_ID_CHARS``
digits, which such text is full of. UK Biobank ids (eids) have 7 digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MIN_GENERATED_ID_CHARS = 5
_BEFORE = r"(?<![A-Za-z0-9])(?<![0-9]\.)"  # not inside a longer token or a decimal; "run_1234567" matches
_AFTER = r"(?![A-Za-z0-9]|\.[0-9])"


class ReleaseError(ValueError):
    """A bundle would carry participant ids of its training cohort; the message names where and which."""


def id_pattern(ids: Iterable[str]) -> re.Pattern | None:
    """One regex matching any of ``ids`` as a whole token (longest first), or None for no ids."""
    unique = sorted({str(i).strip() for i in ids if str(i).strip()}, key=len, reverse=True)
    if not unique:
        return None
    return re.compile(_BEFORE + "(?:" + "|".join(map(re.escape, unique)) + ")" + _AFTER)


def ids_found(text: str, pattern: re.Pattern | None) -> list[str]:
    """The ids ``pattern`` finds in ``text``, each once, in order of appearance."""
    if pattern is None:
        return []
    return list(dict.fromkeys(match.group(0) for match in pattern.finditer(text)))


def strings_of(value) -> list[str]:
    """Every key and string value of a JSON-like structure, recursively (numbers are the kit's, not checked)."""
    if isinstance(value, Mapping):
        return [text for key, item in value.items() for text in (str(key), *strings_of(item))]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in strings_of(item)]
    return [value] if isinstance(value, str) else []


def check_release(ids: Iterable[str], named: Mapping[str, str], generated: Mapping[str, str]) -> None:
    """Refuse (``ReleaseError``) when any of ``ids`` appears in ``named`` (where -> text: the names a user chose or a
    cohort gave, e.g. the run's, the cache's and the bundle folder's; every id looked for) or in ``generated`` (where ->
    text the kit writes: config.json, the model card, tensor names, the ONNX graph's strings; plain-number ids shorter
    than ``MIN_GENERATED_ID_CHARS`` not looked for, as the kit's own counts, sizes and layer numbers are such numbers)."""
    ids = [str(i).strip() for i in ids]
    everything = id_pattern(ids)
    distinctive = id_pattern([i for i in ids if not (i.isdigit() and len(i) < MIN_GENERATED_ID_CHARS)])
    found = {where: ids_found(text, everything) for where, text in named.items()}
    found.update({where: ids_found(text, distinctive) for where, text in generated.items()})
    found = {where: hits for where, hits in found.items() if hits}
    if found:
        listed = "; ".join(f"{where}: {', '.join(hits[:5])}{' ...' if len(hits) > 5 else ''}" for where, hits in found.items())
        raise ReleaseError(f"the bundle would carry participant id(s) of the training cohort ({listed}); rename the run, "
                           "the cache or the bundle folder so that no participant id is part of a name, then export again")

"""Duplicate texts inside a data set and between data sets (training and validation or test), in linear time.

Two texts are *exact* duplicates when they are the same string, *near-exact* when they are the same after
:func:`normalise` (case folded, punctuation dropped, whitespace collapsed): ``"Great film!"`` and
``"great  film"``. Every text is hashed once into a dictionary, so 67,000 rows take well under a second.
A group whose rows have different labels is a *conflict*: at least one of them is mislabelled, or the
text cannot decide the label.

>>> d = find_duplicates([("train", ["Good.", "good", "bad"], [1, 0, 0]), ("test", ["BAD!"], [0])])
>>> [(g.kind, g.rows, g.conflict) for g in d.within["train"]]
[('near-exact', [0, 1], True)]
>>> [(leak.kind, leak.row, leak.matches) for leak in d.across[0].leaks]
[('near-exact', 0, [2])]
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

__all__ = ["Duplicates", "Group", "Leak", "Overlap", "find_duplicates", "normalise"]

_PUNCTUATION = re.compile(r"[^\w\s]|_")


def normalise(text: str) -> str:
    """The text a near-exact duplicate shares: case folded, punctuation made space, whitespace collapsed
    (a text of punctuation alone stays itself, so ``"!"`` and ``"?"`` are not duplicates)."""
    key = " ".join(_PUNCTUATION.sub(" ", text.casefold()).split())
    return key or text


@dataclass
class Group:
    """Rows of one set that share a text: ``exact`` when every row's text is the same string."""

    kind: str
    rows: list[int]
    conflict: bool

    @property
    def extra(self) -> int:
        """Rows beyond the first: what deduplication would drop."""
        return len(self.rows) - 1


@dataclass
class Leak:
    """A row of a later set (``row``) whose text an earlier set has too (its rows ``matches``)."""

    kind: str
    row: int
    matches: list[int]
    conflict: bool


@dataclass
class Overlap:
    """The rows of set ``later`` found in set ``earlier``."""

    later: str
    earlier: str
    leaks: list[Leak]

    def count(self, kind: str | None = None) -> int:
        return sum(1 for leak in self.leaks if kind is None or leak.kind == kind)


@dataclass
class Duplicates:
    """What :func:`find_duplicates` found: ``within`` a set (name -> groups, largest first) and ``across`` sets."""

    within: dict[str, list[Group]] = field(default_factory=dict)
    across: list[Overlap] = field(default_factory=list)

    def extra(self, name: str, kind: str | None = None) -> int:
        """Rows of set ``name`` that repeat an earlier row of it (of groups of ``kind``, or all)."""
        return sum(g.extra for g in self.within.get(name, ()) if kind is None or g.kind == kind)

    def conflicts(self, name: str) -> int:
        return sum(1 for g in self.within.get(name, ()) if g.conflict)


@dataclass
class _Index:
    """One set's rows by normalised text, and its exact texts."""

    keys: list[str]
    rows_of: dict[str, list[int]]
    texts: set[str]


def _index(texts: Sequence[str]) -> _Index:
    keys = [normalise(t) for t in texts]
    rows_of: dict[str, list[int]] = defaultdict(list)
    for row, key in enumerate(keys):
        rows_of[key].append(row)
    return _Index(keys, rows_of, set(texts))


def _differ(labels: Sequence[Hashable] | None, rows: Sequence[int], others: Sequence[Hashable] = ()) -> bool:
    if labels is None:
        return False
    return len({labels[r] for r in rows} | set(others)) > 1


def _groups(texts: Sequence[str], labels: Sequence[Hashable] | None, index: _Index) -> list[Group]:
    groups = []
    for rows in index.rows_of.values():
        if len(rows) > 1:
            kind = "exact" if len({texts[r] for r in rows}) == 1 else "near-exact"
            groups.append(Group(kind, rows, _differ(labels, rows)))
    return sorted(groups, key=lambda g: (-len(g.rows), g.rows[0]))


def _leaks(
    texts: Sequence[str], labels: Sequence[Hashable] | None, earlier: tuple, index: _Index, earlier_index: _Index
) -> list[Leak]:
    earlier_texts, earlier_labels = earlier
    leaks = []
    for row, key in enumerate(index.keys):
        matches = earlier_index.rows_of.get(key)
        if not matches:
            continue
        kind = "exact" if texts[row] in earlier_index.texts else "near-exact"
        mine = [labels[row]] if labels is not None else []
        conflict = earlier_labels is not None and _differ(earlier_labels, matches, mine)
        leaks.append(Leak(kind, row, matches, conflict))
    return leaks


def find_duplicates(sets: Sequence[tuple[str, Sequence[str], Sequence[Hashable] | None]]) -> Duplicates:
    """Duplicates inside each ``(name, texts, labels)`` set, and each set's rows found in an earlier one
    (training first). ``labels``: a hashable label a row (a class id, or a tuple of them), or None when unknown
    (no conflicts then)."""
    indexes = [_index(texts) for _, texts, _ in sets]
    found = Duplicates()
    for (name, texts, labels), index in zip(sets, indexes):
        found.within[name] = _groups(texts, labels, index)
    for later in range(1, len(sets)):
        name, texts, labels = sets[later]
        for earlier in range(later):
            other_name, other_texts, other_labels = sets[earlier]
            leaks = _leaks(texts, labels, (other_texts, other_labels), indexes[later], indexes[earlier])
            found.across.append(Overlap(name, other_name, leaks))
    return found

"""Which of a fixed list of short character n-grams occur in each of many texts, in one pass.

Both models read binary character n-gram features. For one message an Aho-Corasick walk
is the cheapest way to find them, but its cost is per match in Python, and a conversation
of twenty turns pays it twenty times. Here every character of every text is looked up in an
array indexed by code point, and every longer window becomes one integer key (21 bits per
character), looked up in a hash table held in numpy arrays: numpy's fixed cost per call is
paid once per batch instead of once per message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

_BITS = 21  # every code point fits (the highest is U+10FFFF)
_SEP = "\x01"  # between texts: a window across two texts holds it, and no n-gram does
_MAX_N = 3  # 3 x 21 bits fit an unsigned 64-bit key
_LOAD = 8  # table slots per n-gram: a window's first slot seldom holds another key
_MULT = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: spreads neighbouring keys apart
_BITS_U64 = np.uint64(_BITS)


class NgramTable:
    """A vocabulary of 1- to 3-character n-grams, for :meth:`occurrences` in many texts.

    >>> t = NgramTable(["好", "好的", "不行"])
    >>> docs, grams = t.occurrences(["好的", "不行不行", "嗯"])
    >>> list(zip(docs.tolist(), grams.tolist()))
    [(0, 0), (0, 1), (1, 2)]
    """

    __slots__ = ("_slot_keys", "_slot_ids", "_mask", "_shift", "_size", "_max_n", "_chars", "_id_bits")

    def __init__(self, grams: Sequence[str]) -> None:
        # An open-addressing hash table in numpy arrays: one multiply, shift and gather
        # finds most windows, and a round or two of probing the rest. Binary search
        # (searchsorted) cost twice as much at 60,000 keys; buckets of several keys per
        # slot, gathered as rows, cost more than the probing they save.
        for g in grams:
            if not 1 <= len(g) <= _MAX_N or "\x00" in g or _SEP in g:
                raise ValueError(f"n-gram {g!r}: 1 to {_MAX_N} characters, no \\x00 or \\x01")
        # Single characters are read from an array indexed by code point (a third to a half
        # of all windows, at no hashing or probing); the last entry, -1, stands for every
        # code point above the highest.
        chars: dict[int, int] = {}
        for i, g in enumerate(grams):
            if len(g) == 1:
                chars.setdefault(ord(g), i)  # a repeated n-gram keeps its first index
        self._chars = np.full(max(chars, default=0) + 2, -1, dtype=np.int32)
        self._chars[list(chars)] = list(chars.values())
        longer = [(i, g) for i, g in enumerate(grams) if len(g) > 1]
        bits = max(4, (_LOAD * max(len(longer), 1) - 1).bit_length())
        mask = (1 << bits) - 1
        # A repeated n-gram keeps its first index.
        all_keys = np.fromiter((_key(g) for _, g in longer), dtype=np.uint64, count=len(longer))
        key, first_at = np.unique(all_keys, return_index=True)
        first = np.fromiter((i for i, _ in longer), dtype=np.int32, count=len(longer))[first_at]
        keys = np.zeros(mask + 1, dtype=np.uint64)  # 0: empty (every key has a non-zero first character)
        ids = np.full(mask + 1, -1, dtype=np.int32)
        # Linear probing, built in rounds: each unplaced key tries the slot after the one it
        # tried last round, and the first of the keys claiming a free slot takes it. So every
        # slot a key passes over is full, which is all a lookup needs to find it.
        slot = ((key * _MULT) >> np.uint64(64 - bits)).astype(np.intp)
        left = np.arange(len(key))
        while len(left):
            free = keys[slot[left]] == 0
            claimed, taker = np.unique(slot[left][free], return_index=True)
            won = left[free][taker]
            keys[claimed], ids[claimed] = key[won], first[won]
            left = np.setdiff1d(left, won, assume_unique=True)
            slot[left] = (slot[left] + 1) & mask
        self._slot_keys, self._slot_ids = keys, ids
        self._mask = np.intp(mask)
        self._shift = np.uint64(64 - bits)
        self._size = len(grams)
        self._id_bits = np.intp(max(1, len(grams)).bit_length())
        self._max_n = max(map(len, grams), default=1)

    @classmethod
    def of(cls, grams: Sequence[str]) -> NgramTable | None:
        """A table of ``grams``, or None if one of them is one it cannot hold (longer than
        three characters, or holding \\x00 or \\x01): the caller keeps its own walk."""
        try:
            return cls(grams)
        except ValueError:
            return None

    def occurrences(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(text index, n-gram index) of every n-gram present in each text, once per text,
        sorted by text and then by n-gram index."""
        empty = np.zeros(0, dtype=np.intp)
        if not texts or not self._size:
            return empty, empty
        # A code point 0 would make a window's key equal a shorter n-gram's: map it to the
        # separator, which no n-gram holds either.
        joined = _SEP.join(texts).replace("\x00", _SEP)
        cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        total = len(cps)
        # Which text each character of ``joined`` belongs to (a separator: the one after it).
        lengths = np.fromiter(map(len, texts), dtype=np.intp, count=len(texts)) + 1
        text_of = np.repeat(np.arange(len(texts), dtype=np.intp), lengths)
        # (text, n-gram) packed in one integer, text in the high bits: sorting orders by
        # text, then by n-gram, and unpacking is a shift and a mask.
        shift = self._id_bits
        single = self._chars[np.minimum(cps, len(self._chars) - 1).astype(np.intp)]
        at_char = np.flatnonzero(single >= 0)
        found_pairs = [(text_of[at_char] << shift) | single[at_char]]
        if self._max_n > 1 and total > 1:
            windows = []
            k = cps
            for n in range(2, min(self._max_n, total) + 1):
                k = (k[:-1] << _BITS_U64) | cps[n - 1 :]
                windows.append(k)
            q = np.concatenate(windows) if len(windows) > 1 else windows[0]
            at = ((q * _MULT) >> self._shift).astype(np.intp)
            found = self._slot_keys[at]
            # Linear probing: a window whose slot holds another key looks one slot further on.
            pending = np.flatnonzero((found != q) & (found != 0))
            while len(pending):
                at[pending] = (at[pending] + 1) & self._mask
                seen = self._slot_keys[at[pending]]
                found[pending] = seen
                pending = pending[(seen != q[pending]) & (seen != 0)]
            hit = np.flatnonzero(found == q)
            if len(hit):
                # Where in ``joined`` each hit window starts: its index less the windows before its block.
                start = hit.copy()
                offset = 0
                for w in windows[:-1]:
                    offset += len(w)
                    start -= (hit >= offset) * len(w)
                found_pairs.append((text_of[start] << shift) | self._slot_ids[at[hit]])
        pairs = np.concatenate(found_pairs) if len(found_pairs) > 1 else found_pairs[0]
        if not len(pairs):
            return empty, empty
        pairs.sort()
        keep = np.empty(len(pairs), dtype=bool)
        keep[0] = True
        np.not_equal(pairs[1:], pairs[:-1], out=keep[1:])
        pairs = pairs[keep]
        return pairs >> shift, pairs & ((1 << shift) - 1)


def _key(gram: str) -> int:
    k = 0
    for ch in gram:
        k = (k << _BITS) | ord(ch)
    return k


class LazyNgramTable:
    """An :class:`NgramTable` built on first use: only batch callers need one (a single
    message is cheaper to walk with the model's automaton), and the table costs a few MB."""

    __slots__ = ("_grams", "_table", "_built", "_lock")

    def __init__(self, grams: Callable[[], Sequence[str]]) -> None:
        self._grams = grams
        self._table: NgramTable | None = None
        self._built = False
        self._lock = threading.Lock()

    def get(self) -> NgramTable | None:
        """The table, or None if the n-grams are ones it cannot hold (see :meth:`NgramTable.of`)."""
        if not self._built:
            with self._lock:
                if not self._built:
                    self._table = NgramTable.of(self._grams())
                    self._built = True
        return self._table

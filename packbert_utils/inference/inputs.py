"""Reading many inputs lazily, in chunks, with every item checked where it occurs.

The packed predictors (`inference.py`) read texts (and pairs, or word lists) from any iterable, a
generator of millions included, one chunk at a time. What can go wrong is checked here, once, with
the position of the bad item: a container that iterates as something other than texts, an item that
is not a text, pairs that do not pair up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from itertools import islice
from typing import Any

_END = object()


def check_inputs(texts: Any, text_pairs: Any = None) -> int | None:
    """Refuse containers that iterate as something other than texts; return the count when known.

    >>> check_inputs(["a", "b"]), check_inputs(iter(["a"]))
    (2, None)
    >>> check_inputs("one text")
    Traceback (most recent call last):
    ...
    TypeError: texts must be a list (or other iterable) of strings, not one string; wrap it: [texts].
    """
    for name, value in (("texts", texts), ("text_pairs", text_pairs)):
        if value is None and name == "text_pairs":
            continue
        if isinstance(value, str | bytes):
            raise TypeError(
                f"{name} must be a list (or other iterable) of strings, not one string; wrap it: [{name}]."
            )
        if isinstance(value, Mapping) or hasattr(value, "columns"):
            raise TypeError(
                f"{name} is a {type(value).__name__}, which iterates over keys or column names; pass the "
                "column of texts itself, e.g. df['text'] or list(...)."
            )
        if not isinstance(value, Iterable):
            raise TypeError(f"{name} must be an iterable of strings, got {type(value).__name__}.")
    sized = isinstance(texts, Sized)
    if text_pairs is not None and sized and isinstance(text_pairs, Sized) and len(texts) != len(text_pairs):
        raise ValueError(
            f"texts has {len(texts)} items but text_pairs has {len(text_pairs)}; they must pair up one to "
            "one."
        )
    return len(texts) if sized else None


def chunked(
    texts: Iterable[Any],
    text_pairs: Iterable[Any] | None,
    size: int,
    check: Callable[[list[Any], str, int], None],
) -> Iterator[tuple[int, list[Any], list[Any] | None]]:
    """(index of the first item, items, pairs) per chunk of `size`; `check(items, name, start)` checks
    every chunk, and pairs must match the texts one to one.

    >>> [(start, items) for start, items, _ in chunked(iter("abcde"), None, 2, check_strings)]
    [(0, ['a', 'b']), (2, ['c', 'd']), (4, ['e'])]
    """
    text_iter = iter(texts)
    pair_iter = iter(text_pairs) if text_pairs is not None else None
    start = 0
    while True:
        chunk = list(islice(text_iter, size))
        pair_chunk = None
        if pair_iter is not None:
            pair_chunk = list(islice(pair_iter, len(chunk)))
            if len(pair_chunk) < len(chunk):
                raise ValueError(
                    f"text_pairs ended after {start + len(pair_chunk)} items but texts has more "
                    f"(at least {start + len(chunk)}); they must pair up one to one."
                )
            if len(chunk) < size and next(pair_iter, _END) is not _END:
                raise ValueError(
                    f"texts ended after {start + len(chunk)} items but text_pairs has more; they must pair "
                    "up one to one."
                )
            check(pair_chunk, "text_pairs", start)
        if not chunk:
            return
        check(chunk, "texts", start)
        yield start, chunk, pair_chunk
        start += len(chunk)
        if len(chunk) < size:
            return


def check_strings(values: list[Any], name: str, start: int) -> None:
    """Every item must be a string; the error names the first that is not, by its input position.

    >>> check_strings(["a", None], "texts", 10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: texts[11] is None, not a string. Every item needs a text: drop missing ones ...
    """
    for offset, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(
                f"{name}[{start + offset}] is {_what(value)}, not a string. Every item needs a text: drop "
                "missing ones (keeping track of their positions) or replace them with a string."
            )


def check_words(values: list[Any], name: str, start: int) -> None:
    """Every item must be a string (split at whitespace later) or a list/tuple of word strings.

    >>> check_words(["a text", ["pre", "split"]], "texts", 0)  # both fine
    >>> check_words([["a", 3]], "texts", 5)
    Traceback (most recent call last):
    ...
    TypeError: texts[5] holds a int among its words; a text is a string or a list of word strings.
    """
    for offset, value in enumerate(values):
        if isinstance(value, str):
            continue
        if not isinstance(value, list | tuple):
            raise TypeError(
                f"{name}[{start + offset}] is {_what(value)}; a text is a string (split into words at "
                "whitespace) or a list of word strings."
            )
        bad = next((word for word in value if not isinstance(word, str)), _END)
        if bad is not _END:
            raise TypeError(
                f"{name}[{start + offset}] holds {_what(bad)} among its words; a text is a string or a list "
                "of word strings."
            )


def words_of(text: str | Sequence[str]) -> list[str]:
    """The words of a text for token classification: a string split at whitespace, or the given words.

    >>> words_of("Packing  rocks"), words_of(["New York", "!"])
    (['Packing', 'rocks'], ['New York', '!'])
    """
    return text.split() if isinstance(text, str) else list(text)


def _what(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


__all__ = ["check_inputs", "check_strings", "check_words", "chunked", "words_of"]

"""Cutting an over-long tokenized row to `max_seq_length` exactly as the tokenizer would, in linear memory.

Letting a fast tokenizer truncate a sentence pair itself is exact but not bounded: it builds every
combination of the overflowing pieces of both texts (two 5,000-word texts cut to 128 tokens: 6,479
pieces, 600 MB, 2.5 s for one pair). `Truncator` gets the same result from the row's own token ids.
`tokenizing.tokenize_task` uses it; nothing here is needed directly.
"""

from __future__ import annotations

from typing import Any

TRUNCATED_COLUMNS = ("input_ids", "token_type_ids", "attention_mask")


def encode_texts(tokenizer: Any, texts: list[list[str]], max_length: int | None) -> Any:
    """Unpadded token columns of texts (`texts[0]`) or pairs (`texts[0]`, `texts[1]`), all three kept.

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> encode_texts(load_tokenizer(), [["a film"], ["yes"]], None)["token_type_ids"]
    [[0, 0, 0, 0, 1, 1]]
    """
    return tokenizer(
        *texts,
        truncation="longest_first" if max_length is not None else False,
        max_length=max_length,
        padding=False,
        return_token_type_ids=True,
        return_attention_mask=True,
        verbose=False,  # over-long rows are counted and reported by the caller
    )


class Truncator:
    """Cuts an over-long row to max_seq_length exactly as the tokenizer would, in linear memory.

    How many tokens each segment keeps (pairs: `longest_first`) depends only on the segments'
    lengths, so the tokenizer itself truncates a stand-in of the same lengths made of one repeated
    special token (at most max_seq_length + 2 each, which keeps the comparison between the segments).
    The stand-in's layout (special tokens, token types, which slots belong to which segment) is
    then filled with the row's own segment tokens. Layouts are cached by length. A tokenizer that
    cannot tell segments apart (not a fast tokenizer) or tokenizes the stand-in differently
    truncates the row itself.

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> tokenizer = load_tokenizer()
    >>> texts = ["one two three four", "five six"]
    >>> cut = Truncator(tokenizer, 6, 2)(encode_texts(tokenizer, [[texts[0]], [texts[1]]], None), 0, texts)
    >>> cut["input_ids"] == encode_texts(tokenizer, [[texts[0]], [texts[1]]], 6)["input_ids"][0]
    True
    """

    def __init__(self, tokenizer: Any, max_seq_length: int, num_segments: int) -> None:
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.num_segments = num_segments
        self.layouts: dict[tuple[int, ...], dict[str, list] | None] = {}

    def __call__(self, encoded: Any, row: int, texts: list[str]) -> dict[str, list[int]]:
        layout = None
        if getattr(encoded, "encodings", None):  # a fast tokenizer: segments are known per token
            ids, owners = encoded["input_ids"][row], encoded.sequence_ids(row)
            segments = [
                [t for t, owner in zip(ids, owners, strict=True) if owner == k]
                for k in range(self.num_segments)
            ]
            layout = self._layout(tuple(len(segment) for segment in segments))
        if layout is None:
            cut = encode_texts(self.tokenizer, [[text] for text in texts], self.max_seq_length)
            return {column: cut[column][0] for column in TRUNCATED_COLUMNS}
        kept = layout["kept"]
        if self.tokenizer.truncation_side == "left":
            segments = [segment[len(segment) - k :] for segment, k in zip(segments, kept, strict=True)]
        position = [0] * self.num_segments
        input_ids = []
        for token, owner in zip(layout["input_ids"], layout["owners"], strict=True):
            if owner is None:
                input_ids.append(token)
            else:
                input_ids.append(segments[owner][position[owner]])
                position[owner] += 1
        return {
            "input_ids": input_ids,
            "token_type_ids": layout["token_type_ids"],
            "attention_mask": layout["attention_mask"],
        }

    def _layout(self, lengths: tuple[int, ...]) -> dict[str, list] | None:
        cap = self.max_seq_length + 1
        if len(lengths) == 2:  # keep which segment is longer: longest_first breaks ties by position
            first, second = lengths
            key = (min(first, cap + (first > second)), min(second, cap + (second > first)))
        else:
            key = (min(lengths[0], cap),)
        if key not in self.layouts:
            self.layouts[key] = self._stand_in_layout(key)
        return self.layouts[key]

    def _stand_in_layout(self, lengths: tuple[int, ...]) -> dict[str, list] | None:
        token = self.tokenizer.unk_token or self.tokenizer.pad_token
        if token is None:
            return None
        stand_in = [[token * length] for length in lengths]
        whole = encode_texts(self.tokenizer, stand_in, None)
        owners = whole.sequence_ids(0)
        if [owners.count(k) for k in range(len(lengths))] != list(lengths):
            return None  # the stand-in is not one token per repetition here
        cut = encode_texts(self.tokenizer, stand_in, self.max_seq_length)
        owners = cut.sequence_ids(0)
        return {
            "input_ids": cut["input_ids"][0],
            "token_type_ids": cut["token_type_ids"][0],
            "attention_mask": cut["attention_mask"][0],
            "owners": owners,
            "kept": [owners.count(k) for k in range(len(lengths))],
        }


__all__ = ["TRUNCATED_COLUMNS", "Truncator", "encode_texts"]

"""Masking for masked-language-model training, after packing: each sequence draws its own mask.

`DataCollatorForPackedMaskedLM` masks a batch as `DataCollatorForLanguageModeling` does (by default
15% of the real tokens; of those 80% become [MASK], 10% a random token, 10% stay), with two changes
that make packed training testable and safe:

* the draws are per *sequence*, seeded by (seed, epoch, the sequence's example id), over its own
  maskable tokens in order. A sequence therefore gets the same mask whether it is packed with others,
  padded alone or in another batch, and a new one every epoch (`epoch`, advanced by
  `MaskingEpochCallback` in the Trainer). Packed and unpacked training see the same masked tokens,
  so their losses can be compared exactly;
* the number masked per sequence is p * n rounded up or down at random (its mean is p * n), and at
  least one when the sequence has a maskable token: no sequence, hence no pack, is left without a
  masked token (ModernBERT issue #242). Special tokens ([CLS], [SEP], [PAD], [MASK], from the
  tokenizer's special ids; [UNK] stays maskable as in transformers) and padding are never masked
  (ModernBERT issue #212).

Rows are packed rows (`packed_dataset.pack_dataset` with `label_column=None`: `attention_mask` holds
1-based sequence indices, `example_ids` one id per slot) or rows of one sequence each (an int
`example_ids`, padded here like `DataCollatorWithPadding`); concatenate-and-chunk rows are one
"sequence" per chunk. Other columns (e.g. `length`, `idx`) are left out of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from ..checks import IGNORE_INDEX, check_number, check_seed

_PACKED_KEYS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "cls_positions")
_ROW_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class DataCollatorForPackedMaskedLM:
    """Collate packed or unpadded rows and mask them per sequence (see the module doc).

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> collator = DataCollatorForPackedMaskedLM(load_tokenizer(), mlm_probability=0.5, seed=0)
    >>> row = {"input_ids": [101, 7, 8, 9, 102, 101, 5, 102], "attention_mask": [1, 1, 1, 1, 1, 2, 2, 2],
    ...        "example_ids": [4, 9]}
    >>> batch = collator([row])
    >>> (batch["labels"] != -100).sum(dim=1).tolist()  # one or two of 7, 8, 9; exactly one of 5
    [3]
    >>> alone = collator([{"input_ids": [101, 5, 102], "attention_mask": [1, 1, 1], "example_ids": 9}])
    >>> alone["labels"][0].tolist() == batch["labels"][0, 5:].tolist()
    True
    """

    def __init__(
        self,
        tokenizer: Any,
        mlm_probability: float = 0.15,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        seed: int = 0,
        padding: str = "longest",
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
    ) -> None:
        if getattr(tokenizer, "mask_token_id", None) is None:
            raise ValueError("The tokenizer has no mask token; masked-language modelling needs one.")
        self.tokenizer = tokenizer
        self.mlm_probability = check_number(
            mlm_probability, "mlm_probability", minimum=0, maximum=1, above=True
        )
        self.mask_replace_prob = check_number(mask_replace_prob, "mask_replace_prob", minimum=0, maximum=1)
        self.random_replace_prob = check_number(
            random_replace_prob, "random_replace_prob", minimum=0, maximum=1
        )
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError(
                f"mask_replace_prob + random_replace_prob must be at most 1, got {mask_replace_prob} + "
                f"{random_replace_prob}."
            )
        self.seed = check_seed(seed)
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}.")
        self.padding, self.max_length, self.pad_to_multiple_of = padding, max_length, pad_to_multiple_of
        self.epoch = 0
        special = set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
        self.special_ids = torch.tensor(sorted(special), dtype=torch.long)
        vocabulary = np.arange(len(tokenizer))
        self.random_ids = vocabulary[~np.isin(vocabulary, sorted(special))]

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("No rows to collate.")
        if any("labels" in f or "label" in f for f in features):
            raise ValueError(
                "The rows carry labels; masked-LM labels are made here. Pack or tokenize the documents "
                "without a label column (pack_dataset(..., label_column=None))."
            )
        if any("example_ids" not in f for f in features):
            raise ValueError(
                "Every row needs `example_ids` (the id of its sequence, or one per slot of a packed row): "
                "the masks are seeded by them. pack_dataset adds it; add it to unpacked rows with "
                "dataset.add_column('example_ids', list(range(len(dataset))))."
            )
        packed = np.ndim(features[0]["example_ids"]) == 1
        if packed:
            batch = {
                key: torch.tensor([f[key] for f in features]) for key in _PACKED_KEYS if key in features[0]
            }
            example_ids = torch.tensor([f["example_ids"] for f in features])
        else:
            rows = [{k: f[k] for k in _ROW_KEYS if k in f} for f in features]
            batch = dict(
                self.tokenizer.pad(
                    rows,
                    padding=self.padding,
                    max_length=self.max_length,
                    pad_to_multiple_of=self.pad_to_multiple_of,
                    return_tensors="pt",
                )
            )
            example_ids = torch.tensor([[f["example_ids"]] for f in features])
        batch["input_ids"], batch["labels"] = self.mask(
            batch["input_ids"], batch["attention_mask"], example_ids
        )
        return batch

    def mask(
        self, input_ids: torch.Tensor, sequence_index: torch.Tensor, example_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked input ids and labels (the original id where masked, -100 elsewhere) of whole rows.

        `sequence_index` [B, L]: 1-based sequence of each token (0 padding; a 0/1 mask is one
        sequence); `example_ids` [B, M]: the id of sequence m + 1 of each row (-1: empty slot).
        """
        masked = input_ids.clone()
        labels = torch.full_like(input_ids, IGNORE_INDEX)
        maskable = (sequence_index > 0) & ~torch.isin(input_ids, self.special_ids)
        for row in range(input_ids.shape[0]):
            for slot, example in enumerate(example_ids[row].tolist()):
                if example < 0:
                    continue
                positions = torch.nonzero(maskable[row] & (sequence_index[row] == slot + 1)).flatten()
                chosen, replace = self._draw(int(example), len(positions))
                if not len(chosen):
                    continue
                where = positions[torch.from_numpy(chosen)]
                labels[row, where] = input_ids[row, where]
                masked[row, where] = (
                    torch.from_numpy(replace)
                    .to(masked.dtype)
                    .where(torch.from_numpy(replace >= 0), input_ids[row, where])
                )
        return masked, labels

    def _draw(self, example: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Which of a sequence's n maskable tokens are masked, and what replaces each (-1: itself)."""
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, example])
        count = min(n, max(1, int(np.floor(self.mlm_probability * n + rng.random()))))
        chosen = np.sort(rng.permutation(n)[:count])
        kind = rng.random(count)
        random_tokens = self.random_ids[rng.integers(len(self.random_ids), size=count)]
        replace = np.where(
            kind < self.mask_replace_prob,
            self.tokenizer.mask_token_id,
            np.where(kind < self.mask_replace_prob + self.random_replace_prob, random_tokens, -1),
        )
        return chosen, replace.astype(np.int64)


class MaskingEpochCallback(TrainerCallback):
    """Give the collator the Trainer's epoch before each epoch's batches are drawn: a new mask per epoch.

    >>> from packbert_utils.data.tokenizing import load_tokenizer
    >>> collator = DataCollatorForPackedMaskedLM(load_tokenizer())
    >>> callback = MaskingEpochCallback(collator)
    >>> class State: epoch = 2.0
    >>> _ = callback.on_epoch_begin(None, State(), None)
    >>> collator.epoch
    2
    """

    def __init__(self, collator: DataCollatorForPackedMaskedLM) -> None:
        self.collator = collator

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self.collator.epoch = int(state.epoch or 0)
        return control


__all__ = ["DataCollatorForPackedMaskedLM", "MaskingEpochCallback"]

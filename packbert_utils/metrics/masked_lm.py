"""Scoring a masked-language model on held-out documents, and what concatenate-and-chunk does to them.

`evaluate_mlm` reads every held-out document alone (packed: exactly as alone, without padding) and
scores the same masked tokens for every model and training variant: masks are drawn per piece from
(seed, epoch 0, its row). `chunking_contamination` reads the same masked pieces alone and inside the
chunks of `run_mlm.py`'s concatenate-and-chunk layout, and measures how much the neighbours change
each masked token's prediction.
"""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
import pandas as pd
import torch

from ..checks import IGNORE_INDEX
from ..data.masking import DataCollatorForPackedMaskedLM
from ..data.tokenizing import token_columns
from ..packing.dataset import pack_dataset


def evaluate_mlm(
    model: Any,
    pieces: datasets.Dataset,
    tokenizer: Any,
    *,
    max_seq_length: int,
    max_seq_per_pack: int = 8,
    seed: int = 0,
    batch_size: int = 8,
) -> pd.DataFrame:
    """Held-out masked-token loss and accuracy per document, each document alone (packed, so exact).

    The masks are drawn once per piece (seed, epoch 0, its row), so every model and variant is judged
    on the same masked tokens. One row per document (`idx` of the pieces): `masked_tokens`, `mlm_loss`
    (mean cross-entropy over its masked tokens) and `mlm_accuracy`.
    """
    packed = pack_dataset(
        pieces.select_columns([c for c in token_columns(tokenizer) if c in pieces.column_names]),
        max_seq_length,
        max_seq_per_pack,
        label_column=None,
    )
    document_of_piece = np.asarray(pieces["idx"])
    collator = DataCollatorForPackedMaskedLM(tokenizer, seed=seed)
    losses, correct, documents = [], [], []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(packed), batch_size):
            rows = [packed[i] for i in range(start, min(start + batch_size, len(packed)))]
            batch = collator(rows)
            labels = batch["labels"]
            masked = labels != IGNORE_INDEX
            logits = _masked_logits(model, {k: v.to(device) for k, v in batch.items()}, masked)
            targets = labels[masked]
            losses.append(torch.nn.functional.cross_entropy(logits.float().cpu(), targets, reduction="none"))
            correct.append(logits.argmax(-1).cpu() == targets)
            slots = batch["attention_mask"][masked] - 1
            rows_of = torch.nonzero(masked)[:, 0]
            example = torch.tensor([r["example_ids"] for r in rows])[rows_of, slots]
            documents.append(torch.from_numpy(document_of_piece[example.numpy()]))
    model.train(was_training)
    table = pd.DataFrame(
        {
            "document": torch.cat(documents).numpy(),
            "loss": torch.cat(losses).numpy(),
            "correct": torch.cat(correct).numpy(),
        }
    )
    grouped = table.groupby("document")
    return pd.DataFrame(
        {
            "masked_tokens": grouped.size(),
            "mlm_loss": grouped["loss"].mean(),
            "mlm_accuracy": grouped["correct"].mean(),
        }
    )


def chunking_contamination(
    model: Any,
    pieces: datasets.Dataset,
    tokenizer: Any,
    max_seq_length: int,
    *,
    seed: int = 0,
    batch_size: int = 8,
) -> pd.DataFrame:
    """How much concatenate-and-chunk changes a document's masked-token predictions through its neighbours.

    Each piece is masked once (the same tokens both ways), then read alone and inside the chunks of
    the concatenated pieces (`concatenate_and_chunk`, the last short chunk kept). Per piece: `masked_tokens`,
    `kl` (mean KL divergence of the chunked from the alone prediction over its masked tokens),
    `max_abs_logit_diff`, `changed` (fraction of masked tokens whose top prediction changes),
    `loss_alone` and `loss_chunked`, and `starts_chunk` (whether it starts a row, so it saw no
    earlier neighbour). Zero differences mean no contamination; packing gives exactly the alone values.
    """
    collator = DataCollatorForPackedMaskedLM(tokenizer, seed=seed)
    rows = pieces.select_columns([c for c in token_columns(tokenizer) if c in pieces.column_names])
    rows = rows.add_column("example_ids", list(range(len(rows))))
    masked_ids, labels = [], []
    for start in range(0, len(rows), 64):
        batch = collator([rows[i] for i in range(start, min(start + 64, len(rows)))])
        for row in range(batch["input_ids"].shape[0]):
            n = int(batch["attention_mask"][row].sum())
            masked_ids.append(batch["input_ids"][row, :n])
            labels.append(batch["labels"][row, :n])
    lengths = [len(ids) for ids in masked_ids]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        alone = []
        for start in range(0, len(masked_ids), batch_size):
            ids = masked_ids[start : start + batch_size]
            lab = labels[start : start + batch_size]
            width = max(len(i) for i in ids)
            input_ids = torch.stack([torch.nn.functional.pad(i, (0, width - len(i))) for i in ids])
            label = torch.stack(
                [torch.nn.functional.pad(x, (0, width - len(x)), value=IGNORE_INDEX) for x in lab]
            )
            mask = (torch.arange(width)[None] < torch.tensor([len(i) for i in ids])[:, None]).long()
            alone.append(
                _masked_logits(
                    model,
                    {
                        "input_ids": input_ids.to(device),
                        "attention_mask": mask.to(device),
                        "labels": label.to(device),
                    },
                    label != IGNORE_INDEX,
                )
                .float()
                .cpu()
            )
        alone_logits = torch.cat(alone)
        flat_ids, flat_labels = torch.cat(masked_ids), torch.cat(labels)
        chunked = []
        for start in range(0, len(flat_ids), max_seq_length * batch_size):
            stop = min(start + max_seq_length * batch_size, len(flat_ids))
            for row_start in range(start, stop, max_seq_length):
                row = slice(row_start, min(row_start + max_seq_length, stop))
                ids, lab = flat_ids[row][None], flat_labels[row][None]
                batch = {
                    "input_ids": ids.to(device),
                    "attention_mask": torch.ones_like(ids).to(device),
                    "labels": lab.to(device),
                }
                chunked.append(_masked_logits(model, batch, lab != IGNORE_INDEX).float().cpu())
        chunked_logits = torch.cat(chunked)
    model.train(was_training)
    targets = flat_labels[flat_labels != IGNORE_INDEX]
    log_alone = torch.log_softmax(alone_logits, -1)
    log_chunked = torch.log_softmax(chunked_logits, -1)
    kl = (log_alone.exp() * (log_alone - log_chunked)).sum(-1)
    piece_of_token = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    piece = piece_of_token[flat_labels != IGNORE_INDEX].numpy()
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    table = pd.DataFrame(
        {
            "piece": piece,
            "kl": kl.numpy(),
            "max_abs_logit_diff": (alone_logits - chunked_logits).abs().amax(-1).numpy(),
            "changed": (alone_logits.argmax(-1) != chunked_logits.argmax(-1)).numpy(),
            "loss_alone": -log_alone[torch.arange(len(targets)), targets].numpy(),
            "loss_chunked": -log_chunked[torch.arange(len(targets)), targets].numpy(),
        }
    )
    grouped = table.groupby("piece")
    result = pd.DataFrame(
        {
            "masked_tokens": grouped.size(),
            "kl": grouped["kl"].mean(),
            "max_abs_logit_diff": grouped["max_abs_logit_diff"].max(),
            "changed": grouped["changed"].mean(),
            "loss_alone": grouped["loss_alone"].mean(),
            "loss_chunked": grouped["loss_chunked"].mean(),
        }
    )
    result["starts_chunk"] = (starts[result.index] % max_seq_length) == 0
    return result


def _masked_logits(model: Any, batch: dict[str, torch.Tensor], masked: torch.Tensor) -> torch.Tensor:
    """Vocabulary logits [num_masked, vocab] at the masked positions, in row-major order."""
    if getattr(model, "masked_positions_only", False):
        return model(**batch).logits
    return model(**batch).logits[masked.to(batch["input_ids"].device)]


__all__ = ["chunking_contamination", "evaluate_mlm"]

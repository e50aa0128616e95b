"""A RoBERTa-style tokenizer made offline, for tests of families without token types.

Only MiniLM's WordPiece tokenizer ships offline. A byte-level BPE trained here on a few hundred real
snippets behaves like RoBERTa's: `<s> ... </s>` (pairs `</s></s>` between the segments), no
`token_type_ids`, pad id 1, and words split into several sub-words.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import ByteLevelBPETokenizer
from transformers import AutoTokenizer, RobertaTokenizerFast

from packbert_utils.data.loading import load_task

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def roberta_style_tokenizer(folder: Path, vocab_size: int = 400) -> object:
    """Train a small byte-level BPE on Rotten Tomatoes snippets, save it in `folder`, load it back."""
    texts = load_task("rotten_tomatoes")["train"]["sentence"][:400]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    folder.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizerFast(
        vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), add_prefix_space=True
    )
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)

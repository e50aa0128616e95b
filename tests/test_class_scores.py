"""`viz.class_scores.plot_class_scores`: notebook 6's per-entity-type figure draws what it is given."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from packbert_utils.viz.class_scores import plot_class_scores


def test_bars_hold_the_scores_and_counts_in_the_given_order() -> None:
    names, scores, support = ["person", "geo-loc", "movie"], [0.61, 0.4, 0.0], [80, 55, 3]
    fig = plot_class_scores(names, scores, support, title="per type")
    left, right = fig.axes
    try:
        assert [patch.get_width() for patch in left.patches] == pytest.approx(scores)
        assert [patch.get_width() for patch in right.patches] == support
        # The first name is drawn on top: its bar has the smallest y on an inverted axis.
        tops = [patch.get_y() for patch in left.patches]
        assert tops == sorted(tops) and left.yaxis_inverted()
        assert [label.get_text() for label in left.get_yticklabels()] == names
        assert [text.get_text().strip() for text in left.texts] == ["0.61", "0.40", "0.00"]
        assert left.get_xlim() == (0.0, 1.0)
    finally:
        plt.close(fig)


@pytest.mark.parametrize(
    ("names", "scores", "support", "message"),
    [
        ([], [], [], "one entry per class"),
        (["a", "b"], [0.5], [1, 2], "got 2 names, 1 scores and 2 support counts"),
        (["a"], [1.5], [3], r"scores must lie in \[0, 1\]"),
        (["a"], [float("nan")], [3], r"scores must lie in \[0, 1\]"),
        (["a"], [0.5], [2.5], "support must hold counts"),
        (["a"], [0.5], [-1], "support must hold counts"),
    ],
)
def test_refuses_mismatched_or_impossible_values(names, scores, support, message) -> None:
    with pytest.raises(ValueError, match=message):
        plot_class_scores(names, scores, support)

"""The workshop's exercise checks: a verdict for every kind of answer, and strict mode for solutions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from packbert_utils import check_exercise


def stub(x):
    raise NotImplementedError


def test_a_stub_gets_not_yet_without_a_traceback():
    result = check_exercise("stub", stub, [((1,), 1)])
    assert not result and "NotImplementedError" in repr(result)


def test_a_crash_is_reported_with_its_arguments():
    result = check_exercise("crash", lambda x: 1 / x, [((0,), 1.0)])
    assert not result.passed and "ZeroDivisionError" in result.message and "(0,)" in result.message


def test_arrays_and_tensors_compare_element_wise_with_shape():
    mask = np.eye(3, dtype=bool)
    assert check_exercise("eye", lambda n: torch.eye(n, dtype=torch.bool), [((3,), mask)])
    assert not check_exercise("eye", lambda n: np.eye(n + 1, dtype=bool), [((3,), mask)])
    assert not check_exercise("eye", lambda n: ~np.eye(n, dtype=bool), [((3,), mask)])


def test_floats_compare_within_the_tolerance_only():
    assert check_exercise("third", lambda: 1 / 3, [((), 0.3333333)], tolerance=1e-6)
    assert not check_exercise("third", lambda: 0.34, [((), 1 / 3)])


def test_every_case_must_match_and_the_first_mismatch_is_named():
    result = check_exercise("abs", lambda x: x, [((2,), 2), ((-3,), 3)])
    assert not result and "(-3,)" in result.message and "expected 3" in result.message


def test_strict_mode_raises_so_a_broken_solution_fails_ci():
    with pytest.raises(AssertionError, match="Not yet"):
        check_exercise("abs", lambda x: x, [((-3,), 3)], strict=True)
    assert check_exercise("abs", abs, [((-3,), 3)], strict=True).passed


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(TypeError, match="function"):
        check_exercise("x", 3, [((), 3)])
    with pytest.raises(ValueError, match="cases"):
        check_exercise("x", abs, [])

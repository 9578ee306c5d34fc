"""Our grouped splits are scikit-learn's: GroupKFold (5 folds, no shuffle) and LeaveOneGroupOut give the same folds
on the paper's rows and on awkward group sizes (ties, one row per group, a dominant group)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

from wattgpu_core import cv
from wattgpu_core.models import training_frame
from wattgpu_core.store import Store


def _same(ours, theirs):
    assert len(ours) == len(theirs)
    for (tr_a, te_a), (tr_b, te_b) in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(tr_a, tr_b)
        np.testing.assert_array_equal(te_a, te_b)


@pytest.mark.parametrize("strategy", cv.STRATEGIES)
def test_the_paper_rows_split_as_scikit_learn_splits_them(seed_db_path, strategy):
    with Store.open(seed_db_path, read_only=True) as store:
        frame = training_frame(store)
    groups = cv.split_groups(frame, strategy)
    splitter = GroupKFold(n_splits=cv.CV_FOLDS) if strategy == "CV" else LeaveOneGroupOut()
    _same(cv.splits(frame, strategy), list(splitter.split(np.zeros(len(frame)), groups=groups)))


@pytest.mark.parametrize("groups", [
    ["b", "a", "c", "a", "b", "d", "e", "f", "f", "g"],  # ties in size
    list("abcdefgh"),  # one row each
    ["big"] * 50 + list("abcdefghij"),  # one dominant group
    list(np.random.default_rng(3).integers(0, 23, 400).astype(str)),
])
def test_group_folds_match_group_k_fold(groups):
    frame = pd.DataFrame({"llm_id": groups, "gpu_id": "x"})
    expected = list(GroupKFold(n_splits=5).split(np.zeros(len(frame)), groups=cv.split_groups(frame, "CV")))
    _same(cv.splits(frame, "CV"), expected)


def test_too_few_groups_for_five_folds_is_an_error():
    with pytest.raises(ValueError, match="5 folds of 3 groups"):
        cv.group_folds(["a", "b", "c", "a"], 5)

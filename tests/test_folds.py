import numpy as np
import pytest

from datacleaner.folds import make_fold_plan


def labels_for(counts):
    return np.concatenate([np.full(n, c) for c, n in enumerate(counts)])


@pytest.mark.parametrize("scheme,folds", [("dling", 5), ("cv", 5), ("dling", 2), ("cv", 3)])
def test_no_image_is_judged_by_a_committee_that_trained_on_it(scheme, folds):
    labels = labels_for([23, 40, 7, 11])
    usable = np.ones(len(labels), bool)
    usable[[0, 30, 70]] = False
    plan = make_fold_plan(labels, scheme=scheme, folds=folds, seed=3, usable=usable)
    judged_count = np.zeros(len(labels), int)
    for k in range(plan.n_rounds):
        train, judge = plan.train_idx(k), plan.judge_idx(k)
        assert not set(train) & set(judge)
        assert usable[train].all() and usable[judge].all()
        judged_count[judge] += 1
    expected = folds - 1 if scheme == "dling" else 1
    assert (judged_count[usable] == expected).all()
    assert (judged_count[~usable] == 0).all()
    assert plan.judgements_per_image == expected


def test_parts_are_stratified_and_balanced():
    labels = labels_for([50, 20, 9])
    plan = make_fold_plan(labels, scheme="cv", folds=4, seed=0)
    for c, n in enumerate([50, 20, 9]):
        per_part = np.bincount(plan.part[labels == c], minlength=4)
        assert per_part.max() - per_part.min() <= 1, (c, per_part)
    sizes = np.bincount(plan.part, minlength=4)
    assert sizes.max() - sizes.min() <= 1


def test_plan_is_seeded():
    labels = labels_for([30, 30])
    a = make_fold_plan(labels, scheme="dling", folds=3, seed=7).part
    b = make_fold_plan(labels, scheme="dling", folds=3, seed=7).part
    c = make_fold_plan(labels, scheme="dling", folds=3, seed=8).part
    assert (a == b).all() and (a != c).any()


def test_dling_trains_on_one_part_and_cv_on_the_rest():
    labels = labels_for([30, 30])
    dling = make_fold_plan(labels, scheme="dling", folds=3, seed=0)
    cv = make_fold_plan(labels, scheme="cv", folds=3, seed=0)
    assert len(dling.train_idx(0)) == 20 and len(dling.judge_idx(0)) == 40
    assert len(cv.train_idx(0)) == 40 and len(cv.judge_idx(0)) == 20


def test_too_small_class_and_bad_arguments_raise():
    with pytest.raises(ValueError, match="fewer than folds"):
        make_fold_plan(labels_for([10, 2]), scheme="cv", folds=3, seed=0)
    with pytest.raises(ValueError, match="scheme"):
        make_fold_plan(labels_for([10, 10]), scheme="kfold", folds=3, seed=0)

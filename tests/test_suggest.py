"""The labels a user applies: the rule, the margin chosen on trusted rows, and the cross-fitted
estimate of how often a suggested change is right."""

from __future__ import annotations

import numpy as np
import pytest

from src.inference.suggest import NEVER, change_quality, choose_margin, crossfit_folds, gaps, suggest_labels


def test_a_label_changes_only_where_another_beats_it_by_more_than_the_margin():
    posterior = np.array([[0.6, 0.4, 0.0], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1], [0.5, 0.5, 0.0]])
    given = np.array([1, 1, 1, 1])
    best, gap = gaps(posterior, given)
    assert best.tolist() == [0, 2, 1, 0] and gap == pytest.approx([0.2, 0.1, 0.0, 0.0])
    assert suggest_labels(posterior, given, 0.0).tolist() == [0, 2, 1, 1]  # a tie keeps the given label
    assert suggest_labels(posterior, given, 0.15).tolist() == [0, 1, 1, 1]
    assert suggest_labels(posterior, given, 0.2).tolist() == [1, 1, 1, 1]  # a gap equal to the margin: kept
    assert suggest_labels(posterior, given, NEVER).tolist() == [1, 1, 1, 1]


def test_the_margin_is_the_one_that_agrees_with_the_verified_labels_most_often():
    # gaps 0.1 .. 0.9; the changes with a gap above 0.45 are right, the others wrong
    gap = np.linspace(0.1, 0.9, 9)
    posterior = np.stack([(1 - gap) / 2, (1 + gap) / 2], 1)  # given 0, the other label ahead by gap
    given = np.zeros(9, dtype=int)
    verified = (gap > 0.45).astype(int)
    margin = choose_margin(posterior, given, verified)
    assert 0.4 - 1e-9 <= margin < 0.5 and (suggest_labels(posterior, given, margin) == verified).all()
    # every change wrong: keep every label; equally good margins: the largest (fewest changes)
    assert choose_margin(posterior, given, given) == NEVER
    assert choose_margin(posterior, given, np.ones(9, dtype=int)) == 0.0


def simulated(n: int, given_right: float, argmax_right: float, classes: int = 4, seed: int = 0):
    """Posteriors whose argmax is the true label on `argmax_right` of the rows, given labels right on
    `given_right`; the argmax is more confident where it is right."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, n)
    given = np.where(rng.random(n) < given_right, truth, (truth + rng.integers(1, classes, n)) % classes)
    right = rng.random(n) < argmax_right
    best = np.where(right, truth, (truth + rng.integers(1, classes, n)) % classes)
    confidence = np.where(right, rng.uniform(0.5, 0.95, n), rng.uniform(0.3, 0.7, n))
    posterior = np.full((n, classes), 0.0)
    posterior[np.arange(n), best] = confidence
    rest = (1 - confidence) / (classes - 1)
    posterior += np.where(posterior == 0, rest[:, None], 0)
    return posterior, given, truth


def test_labels_more_than_half_wrong_keep_the_cleaning_gains_with_100_checked_rows():
    """A labelling model's output right on 40%, the cleaned argmax right on 80%: the suggestions
    chosen on 100 checked rows follow the cleaning and are right about as often as it is."""
    posterior, given, truth = simulated(2000, given_right=0.4, argmax_right=0.8)
    checked = np.arange(100)
    margin = choose_margin(posterior[checked], given[checked], truth[checked])
    suggested = suggest_labels(posterior, given, margin)
    cleaned = posterior.argmax(1)
    assert (given == truth).mean() < 0.45 and (cleaned == truth).mean() > 0.75
    assert (suggested == truth).mean() > (cleaned == truth).mean() - 0.03
    assert (suggested != given).mean() > 0.4  # it did not fall back to the given labels


@pytest.mark.parametrize("seed", range(4))
def test_half_of_100_checked_rows_calibrating_still_keeps_most_of_the_gains(seed):
    """The default --calibration_share 0.5: 50 of the 100 checked rows set the margin."""
    from src.stage1.trusted import calibration_rows

    posterior, given, truth = simulated(2000, given_right=0.4, argmax_right=0.8, seed=seed)
    kept = calibration_rows(np.r_[truth[:100], np.full(1900, -1)], 0.5, seed)
    suggested = suggest_labels(posterior, given, choose_margin(posterior[kept], given[kept], truth[kept]))
    assert (suggested == truth).mean() > (posterior.argmax(1) == truth).mean() - 0.05
    assert (suggested == truth).mean() > (given == truth).mean() + 0.3  # far from the given labels


def test_labels_mostly_right_are_not_made_worse():
    """Given labels right on 85%, the cleaned argmax on 75%: the cleaning would make them worse;
    the suggestions chosen on 100 checked rows are at least as right as the given labels."""
    posterior, given, truth = simulated(2000, given_right=0.85, argmax_right=0.75, seed=1)
    checked = np.arange(100)
    margin = choose_margin(posterior[checked], given[checked], truth[checked])
    suggested = suggest_labels(posterior, given, margin)
    assert (posterior.argmax(1) == truth).mean() < (given == truth).mean()
    assert (suggested == truth).mean() >= (given == truth).mean() - 0.01


def test_crossfit_folds_are_balanced_and_seeded():
    fold = crossfit_folds(23, 5, seed=3)
    assert np.bincount(fold).tolist() == [5, 5, 5, 4, 4]
    assert (fold == crossfit_folds(23, 5, seed=3)).all() and (fold != crossfit_folds(23, 5, seed=4)).any()


def test_each_folds_changes_use_the_margin_chosen_on_the_other_folds():
    # fold 0: every change right; fold 1: every change wrong. Chosen on the other fold, fold 0's
    # margin keeps everything (no change counted) and fold 1's changes everything (all wrong).
    gap = np.tile(np.linspace(0.1, 0.9, 5), 2)
    posterior = np.stack([(1 - gap) / 2, (1 + gap) / 2], 1)
    given = np.zeros(10, dtype=int)
    verified = np.array([1] * 5 + [0] * 5)
    fold = np.array([0] * 5 + [1] * 5)
    quality = change_quality(posterior, given, verified, fold)
    assert quality["changes_right"]["count"] == 0 and quality["changes_right"]["of"] == 5
    assert quality["given_right"]["share"] == 0.5 and quality["suggested_right"]["share"] == 0.0
    low, high = quality["changes_right"]["interval"]
    assert low == pytest.approx(0.0, abs=1e-12) and 0.4 < high < 0.6  # Wilson, 0 of 5
    # in-sample the margin would have been judged on its own rows: 5 of 5 right
    assert (suggest_labels(posterior, given, choose_margin(posterior, given, verified)) == verified).sum() == 5


def test_the_log_line_tells_verified_labels_from_changes_by_the_margin():
    from src.outputs.record import suggestion_line

    share = {"count": 10, "of": 14, "share": 10 / 14, "interval": [0.454, 0.883]}
    estimate = {"changes_right": share, "given_right": {"of": 89}}
    line = suggestion_line({"changes": 189, "changes_checked": 47, "margin": 0.421, "estimate": estimate,
                            "trusted_rows": 178})
    assert line == ("189 suggested (suggested_label: 47 checked rows' verified labels and 142 changes at margin "
                    "0.421; on the 89 trusted rows kept out of stage 1, cross-fitted, 10 of 14 suggested changes "
                    "were right: 71.4%, 95% interval 45.4%-88.3%)")
    none = suggestion_line({"changes": 47, "changes_checked": 47, "margin": 1.0, "trusted_rows": 178,
                            "estimate": {**estimate, "changes_right": {"count": 0, "of": 0}}})
    assert none.endswith("and 0 changes at margin 1.000; cross-fitted on the 89 trusted "
                         "rows kept out of stage 1, it changed none of them)")
    assert "raise --calibration_share" in suggestion_line({"changes": 3, "changes_checked": 3, "estimate": None,
                                                           "trusted_rows": 3})
    assert "without trusted rows" in suggestion_line({"changes": 0, "estimate": None, "trusted_rows": 0})

    kept = suggestion_line({"changes": 47, "changes_checked": 47, "margin": 1.0, "trusted_rows": 178,
                            "changes_help": False, "estimate": {
                                **estimate, "suggested_right": {"share": 0.742}, "given_right": {"of": 89,
                                                                                                 "share": 0.742}}})
    assert kept.endswith("and 0 changes; on the 89 trusted rows kept out of stage 1, cross-fitted, the "
                         "suggestions were right on 74.2%, the given labels on 74.2%: no other change is suggested)")


def test_changes_are_suggested_only_where_cross_fitted_they_beat_the_given_labels():
    from src.inference.suggest import changes_help

    def quality(suggested, given):
        return {"suggested_right": {"count": suggested}, "given_right": {"count": given}}

    assert changes_help(quality(70, 66)) and not changes_help(quality(66, 66)) and not changes_help(quality(60, 66))

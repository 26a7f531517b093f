"""Tests of trustnas_nb.fairness: Table 2.1's DP and DEO and Table 2.2's SPD, EOD and AOD against hand computations on
small tables written out below, agreement with fairlearn, the one-vs-rest multi-class version on a 3-class table,
numpy / torch / list inputs, fairness_report's keys, the no-positive edge case (NaN with a FairnessWarning), and
errors that name the bad value."""
import math
import warnings
import numpy as np
import pytest
import torch
from fairlearn import metrics as flm

from trustnas_nb.fairness import (FairnessWarning, group_rates, demographic_parity_difference,
                                  equalized_odds_difference, statistical_parity_difference,
                                  equal_opportunity_difference, average_odds_difference, fairness_report)

# Binary table (y, y_hat) by group:
#   f: (1,1) (1,0) (0,1) (0,0)        SR 2/4, TPR 1/2, FPR 1/2
#   m: (1,1) (0,1) (0,1) (0,0) (0,0)  SR 3/5, TPR 1/1, FPR 2/4
# DP = SPD = |2/4 - 3/5| = 1/10; EOD = |1/2 - 1| = 1/2; FPR gap 0; DEO = max(1/2, 0) = 1/2; AOD = (1/2 + 0)/2 = 1/4
# errors: f (1,0) (0,1), m (0,1) (0,1) -> 4/9
YT = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0])
YP = np.array([1, 0, 1, 0, 1, 1, 1, 0, 0])
S = np.array(['f'] * 4 + ['m'] * 5)

# 3-class table (y, y_hat) by group:
#   a: (0,0) (1,1) (2,1)
#   b: (0,0) (1,2) (2,2) (0,1)
# class 0: SR 1/3 vs 1/4, TPR 1/1 vs 1/2, FPR 0/2 vs 0/2 -> SPD 1/12, EOD 1/2, AOD (1/2 + 0)/2   = 1/4
# class 1: SR 2/3 vs 1/4, TPR 1/1 vs 0/1, FPR 1/2 vs 1/3 -> SPD 5/12, EOD 1,   AOD (1 + 1/6)/2   = 7/12
# class 2: SR 0/3 vs 2/4, TPR 0/1 vs 1/1, FPR 0/2 vs 1/3 -> SPD 1/2,  EOD 1,   AOD (1 + 1/3)/2   = 2/3
YT3 = np.array([0, 1, 2, 0, 1, 2, 0])
YP3 = np.array([0, 1, 1, 0, 2, 2, 1])
S3 = np.array(list('aaabbbb'))


def test_group_rates_by_hand():
    df = group_rates(YT, YP, S)
    assert df.loc['f', ['count', 'positives', 'negatives']].tolist() == [4, 2, 2]
    assert df.loc['m', ['count', 'positives', 'negatives']].tolist() == [5, 1, 4]
    np.testing.assert_allclose(df.loc['f', ['selection_rate', 'tpr', 'fpr']].tolist(), [1/2, 1/2, 1/2])
    np.testing.assert_allclose(df.loc['m', ['selection_rate', 'tpr', 'fpr']].tolist(), [3/5, 1, 1/2])


def test_binary_metrics_by_hand():
    assert demographic_parity_difference(YT, YP, S) == pytest.approx(1/10)
    assert equalized_odds_difference(YT, YP, S) == pytest.approx(1/2)
    assert statistical_parity_difference(YT, YP, S) == pytest.approx(1/10)
    assert equal_opportunity_difference(YT, YP, S) == pytest.approx(1/2)
    assert average_odds_difference(YT, YP, S) == pytest.approx(1/4)


def test_agrees_with_fairlearn():
    rng = np.random.default_rng(0)
    for _ in range(5):
        yt, yp, s = rng.integers(0, 2, 60), rng.integers(0, 2, 60), rng.choice(['x', 'y', 'z'], 60)
        kw = dict(sensitive_features=s)
        assert demographic_parity_difference(yt, yp, s) == pytest.approx(flm.demographic_parity_difference(yt, yp, **kw))
        assert statistical_parity_difference(yt, yp, s) == pytest.approx(flm.demographic_parity_difference(yt, yp, **kw))
        assert equalized_odds_difference(yt, yp, s) == pytest.approx(flm.equalized_odds_difference(yt, yp, **kw))
        assert equal_opportunity_difference(yt, yp, s) == pytest.approx(flm.equal_opportunity_difference(yt, yp, **kw))
        assert average_odds_difference(yt, yp, s) == pytest.approx(
            flm.equalized_odds_difference(yt, yp, agg='mean', **kw))


def test_multiclass_one_vs_rest_by_hand():
    spd, per = statistical_parity_difference(YT3, YP3, S3, per_class=True)
    assert list(per) == [0, 1, 2]
    np.testing.assert_allclose(list(per.values()), [1/12, 5/12, 1/2])
    assert spd == pytest.approx((1/12 + 5/12 + 1/2) / 3)
    eod, per = equal_opportunity_difference(YT3, YP3, S3, per_class=True)
    np.testing.assert_allclose(list(per.values()), [1/2, 1, 1])
    assert eod == pytest.approx(5/6)
    aod, per = average_odds_difference(YT3, YP3, S3, per_class=True)
    np.testing.assert_allclose(list(per.values()), [1/4, 7/12, 2/3])
    assert aod == pytest.approx((1/4 + 7/12 + 2/3) / 3)
    # each class agrees with fairlearn on the binarised task
    for c in range(3):
        bt, bp = (YT3 == c).astype(int), (YP3 == c).astype(int)
        assert per[c] == pytest.approx(flm.equalized_odds_difference(bt, bp, sensitive_features=S3, agg='mean'))


def test_labels_argument_adds_unseen_class():
    # class 3 never occurs: SR 0 in both groups -> SPD 0; TPR undefined in both -> EOD left out of the average
    spd, per = statistical_parity_difference(YT3, YP3, S3, labels=[0, 1, 2, 3], per_class=True)
    assert per[3] == 0 and spd == pytest.approx((1/12 + 5/12 + 1/2) / 4)
    with pytest.warns(FairnessWarning):
        assert equal_opportunity_difference(YT3, YP3, S3, labels=[0, 1, 2, 3]) == pytest.approx(5/6)


def test_report_binary_and_multiclass():
    r = fairness_report(YT, YP, S)
    assert set(r) == {'error_pct', 'labels', 'groups', 'dp', 'deo', 'spd', 'eod', 'aod'}
    assert r['error_pct'] == pytest.approx(100 * 4 / 9)
    assert r['groups'] == {'f': 4, 'm': 5} and r['labels'] == [0, 1]
    assert (r['dp'], r['deo'], r['spd'], r['eod'], r['aod']) == pytest.approx((1/10, 1/2, 1/10, 1/2, 1/4))
    r3 = fairness_report(YT3, YP3, S3)
    assert 'dp' not in r3 and 'deo' not in r3
    assert r3['error_pct'] == pytest.approx(100 * 3 / 7)
    assert r3['per_class'][1] == pytest.approx({'spd': 5/12, 'eod': 1, 'aod': 7/12})
    # strings as labels: multi-class path, same numbers
    names = np.array(['bcc', 'mel', 'nv'])
    r3s = fairness_report(names[YT3], names[YP3], S3)
    assert r3s['aod'] == pytest.approx(r3['aod']) and list(r3s['per_class']) == ['bcc', 'mel', 'nv']


def test_torch_and_list_inputs():
    expect = fairness_report(YT, YP, S)
    st = torch.tensor([0] * 4 + [1] * 5)
    r = fairness_report(torch.tensor(YT), torch.tensor(YP), st)
    assert r['groups'] == {0: 4, 1: 5}
    for k in ('dp', 'deo', 'spd', 'eod', 'aod', 'error_pct'):
        assert r[k] == pytest.approx(expect[k])
    assert fairness_report(YT.tolist(), YP.tolist(), S.tolist())['aod'] == pytest.approx(1/4)
    assert demographic_parity_difference(torch.tensor(YT, dtype=torch.bool), torch.tensor(YP, dtype=torch.float32),
                                         S) == pytest.approx(1/10)


def test_group_without_positives_gives_nan_and_warns():
    # group b has no y = 1: its TPR is undefined (fairlearn would silently use 0)
    # a: (1,1) (0,0) SR 1/2;  b: (0,1) (0,1) SR 1 -> DP = SPD = 1/2
    yt, yp, s = [1, 0, 0, 0], [1, 0, 1, 1], ['a', 'a', 'b', 'b']
    assert math.isnan(group_rates(yt, yp, s).loc['b', 'tpr'])
    with pytest.warns(FairnessWarning, match=r"TPR is undefined for group\(s\) \['b'\]"):
        assert math.isnan(equal_opportunity_difference(yt, yp, s))
    with pytest.warns(FairnessWarning):
        assert math.isnan(average_odds_difference(yt, yp, s))
    with pytest.warns(FairnessWarning):
        assert math.isnan(equalized_odds_difference(yt, yp, s))
    with pytest.warns(FairnessWarning):
        r = fairness_report(yt, yp, s)
    assert math.isnan(r['eod']) and math.isnan(r['aod']) and math.isnan(r['deo'])
    assert r['spd'] == pytest.approx(1/2) and r['dp'] == pytest.approx(1/2)   # selection rates stay defined
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        statistical_parity_difference(yt, yp, s)                              # no warning for SPD


def test_multiclass_undefined_class_is_skipped_with_warning():
    # class 2 has no positives in group a (a's labels are 0, 1): its EOD is left out, the others averaged
    yt, yp, s = [0, 1, 0, 1, 2], [0, 1, 1, 1, 2], list('aabbb')
    # class 0: TPR 1 vs 0 -> 1; class 1: TPR 1 vs 1 -> 0; class 2: undefined
    with pytest.warns(FairnessWarning, match='class'):
        eod, per = equal_opportunity_difference(yt, yp, s, per_class=True)
    assert math.isnan(per[2]) and eod == pytest.approx(1/2)


@pytest.mark.parametrize('args, match', [
    (([0, 1, 1], [0, 1], [0, 1, 1]), 'same length'),
    (([0, 1], [0, 1], [0, 0]), 'single group'),
    (([[0, 1]], [0, 1], [0, 1]), 'y_true must be 1-D'),
    (([0, 1], np.zeros((2, 3)), [0, 1]), 'argmax'),
    (([], [], []), 'empty'),
    (([0, float('nan')], [0, 1], [0, 1]), 'NaN'),
    (([0, 0.5], [0, 1], [0, 1]), 'non-integer value 0.5'),
    (([0, 1], [0, 1], ['a', None]), 'sensitive contains None'),
])
def test_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        fairness_report(*args)


def test_bad_labels_and_non_binary():
    with pytest.raises(ValueError, match='binary labels 0/1.*2'):
        demographic_parity_difference([0, 2], [0, 1], [0, 1])
    with pytest.raises(ValueError, match='y_pred must hold binary'):
        equalized_odds_difference([0, 1], [0, 3], [0, 1])
    with pytest.raises(ValueError, match="y_true has label 2, which is not in labels"):
        fairness_report([0, 2], [0, 1], [0, 1], labels=[0, 1])
    with pytest.raises(ValueError, match='repeated'):
        statistical_parity_difference([0, 1], [0, 1], [0, 1], labels=[0, 1, 1])
    with pytest.raises(ValueError, match='at least two class labels'):
        statistical_parity_difference([0, 0], [0, 0], [0, 1])

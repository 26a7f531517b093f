"""Tests of trustnas_nb.caption_metrics: the COCO caption metrics through pycocoevalcap (BLEU-1 by hand, a perfect
caption scoring highest, permutation invariance, empty candidates), SPICE always unavailable with its reason, METEOR
computed when Java exists and skipped with its reason when it does not, CorpusCiderD equal to pycocoevalcap's CIDEr-D
when its corpus is the evaluated references, and errors that name the bad value. METEOR's Java starts once."""
import math
import shutil

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider

from trustnas_nb.caption_metrics import (METRICS, METEOR_NO_JAVA, SPICE_UNAVAILABLE, TABLE_COLUMNS, CaptionScores,
                                         CorpusCiderD, percent, score_captions, tokenize_captions)

HAS_JAVA = shutil.which('java') is not None

REFS = [['the cat is on the mat', 'there is a cat on the mat'],
        ['a dog runs in the park', 'the brown dog is running'],
        ['two men riding horses on the beach', 'men ride horses along the sand']]
CANDS = ['the cat the cat on the mat', 'a dog', 'two men ride horses on a beach']

# six images with distinct content, for CIDEr-D (its idf needs several documents)
CORPUS = [['a red circle on the left', 'a small red disc at the left side', 'there is a red circle'],
          ['two blue squares in the corner', 'blue squares at the bottom right', 'two squares that are blue'],
          ['a green triangle above a yellow star', 'a yellow star below a green triangle'],
          ['a white rhombus in the middle', 'a big white diamond in the centre', 'the image shows a white rhombus'],
          ['a large yellow circle and a small red square', 'a red square next to a yellow circle'],
          ['three green discs in a row', 'a row of three green circles', 'green discs side by side']]
CORPUS_CANDS = ['a red circle at the left', 'two blue squares', 'a triangle and a star', 'a white diamond',
                'a red circle on the left', 'three green circles in a row']


@pytest.fixture(scope='module')
def scores():
    return score_captions(CANDS, REFS)          # starts METEOR once for the module (when Java exists)


def test_hand_bleu1(scores):
    # clipped matches 5/7 + 2/2 + 6/7; closest reference lengths 7 + 5 + 7 = 19 > c = 16
    assert scores['BLEU-1'] == pytest.approx(13 / 16 * math.exp(1 - 19 / 16), abs=1e-8)
    assert isinstance(scores, CaptionScores) and isinstance(scores, dict)
    assert all(isinstance(v, float) for v in scores.values())
    assert 1 >= scores['BLEU-1'] >= scores['BLEU-2'] >= scores['BLEU-3'] >= scores['BLEU-4'] > 0
    assert {k: v.shape for k, v in scores.per_image.items()} == {k: (3,) for k in scores}


def test_spice_unavailable_with_reason(scores):
    assert 'SPICE' not in scores and scores.unavailable['SPICE'] == SPICE_UNAVAILABLE
    assert 'CoreNLP' in SPICE_UNAVAILABLE and 'offline' in SPICE_UNAVAILABLE
    assert 'SPICE' not in score_captions(CANDS, REFS, metrics='BLEU').unavailable   # only requested metrics are listed
    assert score_captions(CANDS, REFS, metrics=['spice']) == {}


@pytest.mark.skipif(not HAS_JAVA, reason='METEOR needs java')
def test_meteor_present_with_java(scores):
    assert list(scores) == [m for m in METRICS if m != 'SPICE'] and 'METEOR' not in scores.unavailable
    assert 0 < scores['METEOR'] < 1
    again = score_captions(CANDS, REFS, metrics='METEOR')            # the cached process answers the same
    assert again['METEOR'] == scores['METEOR']


def test_meteor_skipped_without_java(monkeypatch):
    monkeypatch.setattr(shutil, 'which', lambda *a, **k: None)
    s = score_captions(CANDS, REFS)
    assert 'METEOR' not in s and s.unavailable == {'METEOR': METEOR_NO_JAVA, 'SPICE': SPICE_UNAVAILABLE}
    assert 'java' in METEOR_NO_JAVA and set(s) == {'BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'ROUGE-L', 'CIDEr-D'}
    with pytest.raises(RuntimeError, match='Java'):
        tokenize_captions(['a cat'], 'ptb')


def test_perfect_caption_highest():
    options = ['the cat is on the mat', 'a cat on a mat', 'the cat the cat on the mat', 'a dog on the mat', 'mat']
    per = [score_captions([o, *CANDS[1:]], REFS).per_image for o in options]
    for m in per[0]:
        vals = [p[m][0] for p in per]
        assert int(np.argmax(vals)) == 0 and vals[0] > max(vals[1:]), (m, vals)


def test_permutation_invariance(scores):
    perm = [2, 0, 1]
    sp = score_captions([CANDS[i] for i in perm], [REFS[i] for i in perm])
    for m in scores:
        assert sp[m] == pytest.approx(scores[m], abs=1e-12)
        np.testing.assert_allclose(sp.per_image[m], scores.per_image[m][perm], atol=1e-12)


def test_empty_candidates_score_zero(scores):
    e = score_captions(['', *CANDS[1:]], REFS)
    assert all(e.per_image[m][0] == 0 for m in e) and e['BLEU-1'] < scores['BLEU-1']
    z = score_captions(['', '...', ''], REFS)
    assert set(z) == set(scores) and all(abs(v) < 1e-6 for v in z.values())


def test_percent_and_columns(scores):
    p = percent(scores)
    assert p['CIDEr-D'] == pytest.approx(100 * scores['CIDEr-D']) and p.unavailable == scores.unavailable
    np.testing.assert_allclose(p.per_image['BLEU-4'], 100 * scores.per_image['BLEU-4'])
    assert set(TABLE_COLUMNS) == set(METRICS) and TABLE_COLUMNS['CIDEr-D'] == 'cider'


def test_cider_is_cider_d():
    one = [[r[0]] for r in CORPUS]
    assert score_captions([r[0] for r in one], one, 'CIDEr')['CIDEr-D'] == pytest.approx(10.0, abs=1e-12)   # x10
    c = lambda cand: score_captions([cand, *(r[0] for r in one[1:])], one, 'CIDEr').per_image['CIDEr-D'][0]
    assert c('a red circle') > c('a red red red red circle')                                            # clipping
    assert c('a red circle on the left') > c('a red circle on the left on the left on the left')        # length penalty
    assert score_captions(['a red circle'], [['a red circle']], 'CIDEr')['CIDEr-D'] == 0.0           # one image: idf 0


def test_corpus_cider_equals_pycocoevalcap():
    cider = CorpusCiderD(CORPUS)
    ours = cider.scores(CORPUS_CANDS, CORPUS)
    mean, theirs = Cider().compute_score({i: r for i, r in enumerate(CORPUS)},
                                         {i: [c] for i, c in enumerate(CORPUS_CANDS)})
    assert ours.shape == (len(CORPUS),) and len(set(np.round(ours, 6))) > 3
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    assert ours.mean() == pytest.approx(mean, abs=1e-9)
    np.testing.assert_allclose(ours, score_captions(CORPUS_CANDS, CORPUS, 'CIDEr').per_image['CIDEr-D'], atol=1e-9)


def test_corpus_cider_fixed_corpus():
    cider = CorpusCiderD(CORPUS)
    both = cider.scores(CORPUS_CANDS[:2], CORPUS[:2])
    np.testing.assert_allclose(both, [cider.scores([CORPUS_CANDS[i]], [CORPUS[i]])[0] for i in range(2)], atol=0)
    good, bad = cider.scores([CORPUS[0][0], CORPUS[1][0]], [CORPUS[0], CORPUS[0]])
    assert good > bad >= 0
    assert cider.n_docs == 6 and cider.df[('red',)] == 2      # 'red' occurs in the references of images 0 and 4


def test_tokenizers():
    assert tokenize_captions(["A man's dog, running... don't!", '  Two   CATS ', '...']) == \
        ["a man's dog running don't", 'two cats', '']
    assert tokenize_captions(['a  b\nc'], None) == ['a b c']
    if HAS_JAVA:
        assert tokenize_captions(["A man's dog, running... don't!", '', 'Two cats.'], 'ptb') == \
            ["a man 's dog running do n't", '', 'two cats']


@pytest.mark.parametrize('cands, refs, match', [
    ([], [], 'candidates is empty'),
    (CANDS, REFS[:2], '3 candidates but 2 reference lists'),
    (CANDS, [REFS[0], [], REFS[2]], r'references\[1\] is empty'),
    (CANDS, [REFS[0], 'a dog', REFS[2]], r'references\[1\] must be a list of strings, got str'),
    (['a', None, 'b'], REFS, r'candidates\[1\] must be a string, got NoneType'),
    (['a', 'b', 3], REFS, r'candidates\[2\] must be a string, got int 3'),
    (CANDS, [REFS[0], REFS[1], ['two men', 7]], r'references\[2\]\[1\] must be a string, got int 7'),
    ('a cat', [['a cat']], 'candidates must be a list of strings, got str'),
])
def test_bad_input(cands, refs, match):
    with pytest.raises(ValueError, match=match):
        score_captions(cands, refs)
    with pytest.raises(ValueError, match=match):
        CorpusCiderD(CORPUS).scores(cands, refs)


def test_bad_options():
    with pytest.raises(ValueError, match="unknown metric 'BLEU-5'"): score_captions(CANDS, REFS, metrics=['BLEU-5'])
    with pytest.raises(ValueError, match='tokenize must be one of'): score_captions(CANDS, REFS, tokenize='spacy')
    assert list(score_captions(CANDS, REFS, metrics=['bleu', 'cider'])) == ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'CIDEr-D']
    with pytest.raises(ValueError, match='references_corpus is empty'): CorpusCiderD([])
    with pytest.raises(ValueError, match=r'references_corpus\[1\] is empty'): CorpusCiderD([['a b'], []])
    with pytest.raises(ValueError, match='sigma must be'): CorpusCiderD(CORPUS, sigma=0)
    with pytest.raises(ValueError, match='n must be'): CorpusCiderD(CORPUS, n=0)

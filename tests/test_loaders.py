"Real-dataset loaders (trustnas_nb.loaders), tested on tiny fixtures written in the real on-disk formats."
import csv, json, os, pickle, shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from trustnas_nb.loaders import (REAL_DATASETS, BRAIN_TUMOR_CLASSES, CIFAR10_CLASSES, GLUE_CLASSES, GLUE_TASKS, ISIC_CLASSES,
                                 DatasetFormatError, DatasetNotFoundError, TextDataset, TextPairDataset, expected_layout,
                                 get_real_dataset, read_idx, write_fixture, write_idx)

torch.set_num_threads(1)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    "Every fixture at its default size, written once for the module (tests that modify files copy them first)."
    r = tmp_path_factory.mktemp('data')
    for name in REAL_DATASETS: write_fixture(name, r)
    return r


def _copy(root, tmp_path, sub):
    shutil.copytree(root/sub, tmp_path/sub)
    return tmp_path


# ---------------------------------------------------------------- MNIST
@pytest.mark.parametrize('compress', [True, False])
def test_mnist_gz_and_plain(tmp_path, compress):
    write_fixture('mnist', tmp_path, n=2, compress=compress)
    assert any(p.suffix == '.gz' for p in (tmp_path/'MNIST'/'raw').iterdir()) == compress
    for split in ('train', 'test'):
        ds = get_real_dataset('mnist', tmp_path, split=split)
        assert len(ds) == 20
        assert Counter(ds.targets.tolist()) == {c: 2 for c in range(10)}
        x, y = ds[3]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.max() > 0.5
        assert y == int(ds.targets[3])
    assert get_real_dataset('mnist', tmp_path, image_size=32)[0][0].shape == (1, 32, 32)


def test_mnist_kaggle_spelling_and_bad_idx(tmp_path):
    raw = tmp_path/'MNIST'/'raw'
    imgs = np.arange(2*28*28, dtype=np.uint8).reshape(2, 28, 28) % 251
    write_idx(raw/'train-images.idx3-ubyte', imgs)
    write_idx(raw/'train-labels.idx1-ubyte', np.array([7, 3], np.uint8))
    ds = get_real_dataset('mnist', tmp_path)
    assert ds.targets.tolist() == [7, 3]
    assert np.array_equal(read_idx(raw/'train-images.idx3-ubyte'), imgs)
    assert torch.allclose(ds[1][0][0], torch.from_numpy(imgs[1]).float()/255)
    (raw/'train-labels.idx1-ubyte').write_bytes(b'\x00\x00\x08\x01\x00\x00\x00\x05\x01')  # header says 5 labels, 1 present
    with pytest.raises(DatasetFormatError, match='5'): get_real_dataset('mnist', tmp_path)
    (raw/'train-labels.idx1-ubyte').write_bytes(b'PK\x03\x04junk')
    with pytest.raises(DatasetFormatError, match='not an idx file'): get_real_dataset('mnist', tmp_path)


def test_fixture_is_deterministic(tmp_path):
    a, b = write_fixture('mnist', tmp_path/'a', n=1, seed=3), write_fixture('mnist', tmp_path/'b', n=1, seed=3)
    c = write_fixture('mnist', tmp_path/'c', n=1, seed=4)
    f = 'raw/train-images-idx3-ubyte.gz'
    assert (a/f).read_bytes() == (b/f).read_bytes() != (c/f).read_bytes()


# ---------------------------------------------------------------- CIFAR
def test_cifar10(root):
    tr, te = get_real_dataset('cifar10', root), get_real_dataset('cifar10', root, split='test')
    assert len(tr) == len(te) == 20 and tr.classes == list(CIFAR10_CLASSES)
    assert Counter(tr.targets.tolist()) == {c: 2 for c in range(10)}
    # pixel layout: the loader's image i equals the pickled row (R, G, B planes of 32x32) of the file it came from
    with open(root/'cifar-10-batches-py'/'test_batch', 'rb') as fh: raw = pickle.load(fh, encoding='latin1')
    x, y = te[5]
    assert x.shape == (3, 32, 32) and y == raw['labels'][5]
    expect = torch.from_numpy(raw['data'][5].reshape(3, 32, 32).astype(np.float32)/255)
    assert torch.allclose(x, expect)


def test_cifar100_fine_and_coarse(root):
    fine = get_real_dataset('cifar100', root, split='test')
    coarse = get_real_dataset('cifar100', root, split='test', label_type='coarse')
    assert len(fine) == 100 and len(fine.classes) == 100 and len(coarse.classes) == 20
    assert sorted(fine.targets.tolist()) == list(range(100))
    assert torch.equal(coarse.targets, fine.targets // 5)  # the fixture's (made-up) fine -> coarse map
    with pytest.raises(ValueError, match='label_type'): get_real_dataset('cifar100', root, label_type='medium')


def test_cifar_refuses_code_in_pickle(root, tmp_path):
    _copy(root, tmp_path, 'cifar-10-batches-py')

    class Evil:
        def __reduce__(self): return (os.system, ('echo pwned',))
    with open(tmp_path/'cifar-10-batches-py'/'batches.meta', 'wb') as fh: pickle.dump({'label_names': Evil()}, fh)
    with pytest.raises(DatasetFormatError, match='refusing'): get_real_dataset('cifar10', tmp_path, split='test')


def test_cifar_missing_batch(root, tmp_path):
    _copy(root, tmp_path, 'cifar-10-batches-py')
    (tmp_path/'cifar-10-batches-py'/'data_batch_4').unlink()
    with pytest.raises(DatasetNotFoundError, match='data_batch_4'): get_real_dataset('cifar10', tmp_path)


# ---------------------------------------------------------------- ImageNet-style folders
def test_imagenet(root, tmp_path):
    ds = get_real_dataset('imagenet', root, split='val', image_size=24)
    assert len(ds) == 6 and ds.classes == sorted(ds.classes) and all(c.startswith('n') and len(c) == 9 for c in ds.classes)
    assert Counter(ds.targets.tolist()) == {0: 2, 1: 2, 2: 2}
    x, y = ds[0]
    assert x.shape == (3, 24, 24) and y == 0
    write_fixture('imagenet', tmp_path, n=1, n_classes=2, folder='tiny')
    assert len(get_real_dataset('imagenet', tmp_path, folder='tiny')) == 2
    # the official val archive is a flat folder: refused with an explanation
    flat = tmp_path/'imagenet'/'val'; flat.mkdir(parents=True)
    for p in (tmp_path/'tiny'/'val').rglob('*.JPEG'): shutil.copy(p, flat/p.name)
    with pytest.raises(DatasetFormatError, match='class folders'): get_real_dataset('imagenet', tmp_path, split='val')


# ---------------------------------------------------------------- CelebA
def test_celeba_splits_target_and_sensitive(root):
    n = 6
    lens = {s: len(get_real_dataset('celeba', root, split=s)) for s in ('train', 'val', 'test', 'all')}
    assert lens == {'train': n, 'val': n, 'test': n, 'all': 3*n}
    ds = get_real_dataset('celeba', root, split='valid', image_size=(30, 25))
    # fixture: within a split, Male alternates 0,1,..., Attractive goes 0,0,1,1,...
    assert ds.sensitive.tolist() == [j % 2 for j in range(n)]
    assert ds.targets.tolist() == [(j//2) % 2 for j in range(n)]
    assert [p.name for p in ds.paths] == [f'{k:06d}.jpg' for k in range(n + 1, 2*n + 1)]
    x, y, a = ds[3]
    assert x.shape == (3, 30, 25) and (y, a) == (1, 1)
    assert ds.classes == ['not Attractive', 'Attractive'] and ds.sensitive_names == ['not Male', 'Male']
    smile = get_real_dataset('celeba', root, target='Smiling', sensitive='Young')
    assert smile.targets.tolist() == smile.attr[:, smile.attr_names.index('Smiling')].tolist()
    with pytest.raises(ValueError, match='Gender'): get_real_dataset('celeba', root, sensitive='Gender')


def test_celeba_batches_through_dataloader(root):
    ds = get_real_dataset('celeba', root, image_size=32)
    x, y, a = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 3, 32, 32) and y.shape == a.shape == (4,)


def test_celeba_bad_attr_file(root, tmp_path):
    _copy(root, tmp_path, 'celeba')
    f = tmp_path/'celeba'/'list_attr_celeba.txt'
    lines = f.read_text().splitlines()
    f.write_text('\n'.join(['99'] + lines[1:]) + '\n')
    with pytest.raises(DatasetFormatError, match='99'): get_real_dataset('celeba', tmp_path)


# ---------------------------------------------------------------- ISIC-2018
def _sex_table(root):
    with open(root/'ISIC2018'/'HAM10000_metadata.csv') as fh: return {r['image_id']: r['sex'] for r in csv.DictReader(fh)}


def test_isic_labels_and_sex(root):
    n = 2
    ds = get_real_dataset('isic2018', root)
    assert ds.classes == list(ISIC_CLASSES) == ['MEL', 'NV', 'BCC', 'AKIEC', 'BKL', 'DF', 'VASC']
    assert len(ds) == 7*n and ds.n_unknown_sex == 1
    assert Counter(ds.targets.tolist()) == {c: n for c in range(7)}
    sex = _sex_table(root)
    assert ds.sensitive.tolist() == [{'male': 1, 'female': 0}[sex[i]] for i in ds.image_ids]
    assert set(ds.sensitive.tolist()) == {0, 1} and ds.sensitive_names == ['female', 'male'] == list(ds.attributes)
    assert ds.a is ds.sensitive and ds.y is ds.targets and ds.num_classes == 7
    # the label is the one-hot column of the ground-truth CSV
    with open(root/'ISIC2018'/'ISIC2018_Task3_Training_GroundTruth'/'ISIC2018_Task3_Training_GroundTruth.csv') as fh:
        gt = {r['image']: [c for c in ISIC_CLASSES if float(r[c]) == 1.0][0] for r in csv.DictReader(fh)}
    assert [ds.classes[y] for y in ds.targets.tolist()] == [gt[i] for i in ds.image_ids]
    x, y, a = ds[0]
    assert x.shape[0] == 3 and (y, a) == (int(ds.targets[0]), int(ds.sensitive[0]))


def test_isic_unknown_sex_choices(root):
    keep = get_real_dataset('isic2018', root, unknown_sex='keep')
    assert len(keep) == 15 and keep.sensitive.tolist().count(-1) == 1
    unknown = keep.image_ids[keep.sensitive.tolist().index(-1)]
    assert _sex_table(root)[unknown] == 'unknown'
    with pytest.raises(DatasetFormatError, match='unknown sex'): get_real_dataset('isic2018', root, unknown_sex='error')
    with pytest.raises(ValueError, match='impute'): get_real_dataset('isic2018', root, unknown_sex='impute')


def test_isic_val_test_need_sex_metadata(root, tmp_path):
    for split in ('val', 'test'):
        ds = get_real_dataset('isic2018', root, split=split)
        assert len(ds) == 14 and set(ds.sensitive.tolist()) == {0, 1}
    _copy(root, tmp_path, 'ISIC2018')
    (tmp_path/'ISIC2018'/'ISIC2018_Task3_ValTest_metadata.csv').unlink()
    with pytest.raises(DatasetNotFoundError, match='known sex'): get_real_dataset('isic2018', tmp_path, split='val')
    ds = get_real_dataset('isic2018', tmp_path, split='val', unknown_sex='keep')
    assert len(ds) == 14 and set(ds.sensitive.tolist()) == {-1}


def test_isic_rejects_non_onehot(root, tmp_path):
    _copy(root, tmp_path, 'ISIC2018')
    f = tmp_path/'ISIC2018'/'ISIC2018_Task3_Test_GroundTruth'/'ISIC2018_Task3_Test_GroundTruth.csv'
    lines = f.read_text().splitlines()
    lines[1] = lines[1].split(',')[0] + ',1.0,1.0,0.0,0.0,0.0,0.0,0.0'
    f.write_text('\n'.join(lines) + '\n')
    with pytest.raises(DatasetFormatError, match='one-hot'): get_real_dataset('isic2018', tmp_path, split='test')


# ---------------------------------------------------------------- COCO captions (Karpathy split)
def test_coco_karpathy_splits_and_captions(root):
    meta = json.loads((root/'coco'/'dataset_coco.json').read_text())['images']
    by_split = {s: {im['cocoid'] for im in meta if im['split'] == s} for s in ('train', 'restval', 'val', 'test')}
    assert all(len(v) == 2 for v in by_split.values())
    tr = get_real_dataset('coco_captions', root, split='train', image_size=32)
    assert set(tr.image_ids) == by_split['train'] | by_split['restval'] and len(tr) == 4
    assert set(get_real_dataset('coco_captions', root, include_restval=False).image_ids) == by_split['train']
    assert set(get_real_dataset('coco_captions', root, split='val').image_ids) == by_split['val']
    assert set(get_real_dataset('coco_captions', root, split='test').image_ids) == by_split['test']
    assert len(get_real_dataset('coco_captions', root, split='all')) == 8
    raw = {im['cocoid']: im for im in meta}
    for i, cid in enumerate(tr.image_ids):
        assert tr.captions[i] == [s['raw'] for s in raw[cid]['sentences']] and len(tr.captions[i]) == 5
        assert tr.tokens[i] == [s['tokens'] for s in raw[cid]['sentences']]
        assert tr.paths[i] == root/'coco'/raw[cid]['filepath']/raw[cid]['filename']
    assert tr.karpathy_splits.count('restval') == 2
    assert {p.parent.name for p, s in zip(tr.paths, tr.karpathy_splits) if s == 'restval'} == {'val2014'}
    x, caps = tr[0]
    assert x.shape == (3, 32, 32) and caps == tr.captions[0]


def test_coco_missing_images(root, tmp_path):
    _copy(root, tmp_path, 'coco')
    shutil.rmtree(tmp_path/'coco'/'val2014')
    assert len(get_real_dataset('coco_captions', tmp_path, include_restval=False)) == 2  # train2014 only: fine
    with pytest.raises(DatasetNotFoundError, match='val2014'): get_real_dataset('coco_captions', tmp_path, split='test')


# ---------------------------------------------------------------- brain-tumour MRI
@pytest.mark.parametrize('legacy', [False, True])
def test_brain_tumor_mri_both_folder_spellings(tmp_path, legacy):
    write_fixture('brain_tumor_mri', tmp_path, n=2, legacy_names=legacy)
    assert ('no_tumor' in os.listdir(tmp_path/'brain_tumor_mri'/'Training')) == legacy
    for split in ('train', 'test'):
        ds = get_real_dataset('brain_tumor_mri', tmp_path, split=split, image_size=20)
        assert ds.classes == list(BRAIN_TUMOR_CLASSES) == ['glioma', 'meningioma', 'notumor', 'pituitary']
        assert ds.class_to_idx == {'glioma': 0, 'meningioma': 1, 'notumor': 2, 'pituitary': 3}
        assert Counter(ds.targets.tolist()) == {c: 2 for c in range(4)}
        for (path, y) in ds.samples:
            folder = Path(path).parent.name
            assert {'glioma_tumor': 'glioma', 'meningioma_tumor': 'meningioma', 'no_tumor': 'notumor',
                    'pituitary_tumor': 'pituitary'}.get(folder, folder) == ds.classes[y]
        assert ds[0][0].shape == (3, 20, 20)


def test_brain_tumor_mri_bad_folders(root, tmp_path):
    _copy(root, tmp_path, 'brain_tumor_mri')
    shutil.rmtree(tmp_path/'brain_tumor_mri'/'Testing'/'pituitary')
    with pytest.raises(DatasetNotFoundError, match='pituitary'): get_real_dataset('brain_tumor_mri', tmp_path, split='test')
    (tmp_path/'brain_tumor_mri'/'Training'/'astrocytoma').mkdir()
    with pytest.raises(DatasetFormatError, match='astrocytoma'): get_real_dataset('brain_tumor_mri', tmp_path)


# ---------------------------------------------------------------- SST-2
def test_sst2(root, tmp_path):
    tr, dev, te = (get_real_dataset('sst2', root, split=s) for s in ('train', 'dev', 'test'))
    assert len(tr) == len(dev) == len(te) == 6
    assert Counter(tr.targets.tolist()) == {0: 3, 1: 3} and set(te.targets.tolist()) == {-1}
    assert dev.split == 'val' and tr.classes == ['negative', 'positive']
    d = tmp_path/'glue'/'SST-2'; d.mkdir(parents=True)
    (d/'train.tsv').write_text('sentence\tlabel\nit \'s a "great" film \t1\n"\tunbalanced quote\t0\n')
    with pytest.raises(DatasetFormatError, match='2 tab-separated'): get_real_dataset('sst2', tmp_path)
    (d/'train.tsv').write_text('sentence\tlabel\nit \'s a "great" film \t1\n" dull\t0\n')
    ds = get_real_dataset('sst2', tmp_path, transform=str.split)
    assert ds.sentences == ['it \'s a "great" film ', '" dull'] and ds[0] == (['it', "'s", 'a', '"great"', 'film'], 1)
    with pytest.raises(ValueError, match='image_size'): get_real_dataset('sst2', tmp_path, image_size=32)



# ---------------------------------------------------------------- GLUE sentence-pair tasks (Table 4.6)
# What GLUE's own files look like, written out here independently of the loader's tables:
# task -> (folder, {split: file}, {split: header line}, the two sentence columns, label column, label codes, classes)
_STD_FILES = {'train': 'train.tsv', 'val': 'dev.tsv', 'test': 'test.tsv'}
_MNLI = 'index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2'
_MNLI_DEV = _MNLI + '\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label'
GLUE_SPEC = {
    'mrpc': ('MRPC', _STD_FILES, {'train': 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String', 'val': 'Quality\t#1 ID\t#2 ID\t#1 String\t#2 String',
                                  'test': 'index\t#1 ID\t#2 ID\t#1 String\t#2 String'},
             ('#1 String', '#2 String'), 'Quality', ('0', '1'), ('not_equivalent', 'equivalent')),
    'qqp': ('QQP', _STD_FILES, {'train': 'id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate',
                                'val': 'id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate', 'test': 'id\tquestion1\tquestion2'},
            ('question1', 'question2'), 'is_duplicate', ('0', '1'), ('not_duplicate', 'duplicate')),
    'mnli': ('MNLI', {'train': 'train.tsv', 'val': 'dev_matched.tsv', 'val_mismatched': 'dev_mismatched.tsv',
                      'test': 'test_matched.tsv', 'test_mismatched': 'test_mismatched.tsv'},
             {'train': _MNLI + '\tlabel1\tgold_label', 'val': _MNLI_DEV, 'val_mismatched': _MNLI_DEV, 'test': _MNLI, 'test_mismatched': _MNLI},
             ('sentence1', 'sentence2'), 'gold_label', ('contradiction', 'entailment', 'neutral'), ('contradiction', 'entailment', 'neutral')),
    'qnli': ('QNLI', _STD_FILES, {'train': 'index\tquestion\tsentence\tlabel', 'val': 'index\tquestion\tsentence\tlabel',
                                  'test': 'index\tquestion\tsentence'},
             ('question', 'sentence'), 'label', ('entailment', 'not_entailment'), ('entailment', 'not_entailment')),
    'rte': ('RTE', _STD_FILES, {'train': 'index\tsentence1\tsentence2\tlabel', 'val': 'index\tsentence1\tsentence2\tlabel',
                                'test': 'index\tsentence1\tsentence2'},
            ('sentence1', 'sentence2'), 'label', ('entailment', 'not_entailment'), ('entailment', 'not_entailment')),
}
PAIR_TASKS = list(GLUE_SPEC)


def _read_tsv(path):
    "A GLUE file read by hand: a header line, then one tab-separated row per line, nothing quoted."
    lines = path.read_text(encoding='utf-8-sig').split('\n')
    header = lines[0].split('\t')
    return header, [dict(zip(header, l.split('\t'))) for l in lines[1:] if l]


def test_glue_tasks_names_and_classes():
    assert GLUE_TASKS == ('sst2', 'mrpc', 'qqp', 'mnli', 'qnli', 'rte') and set(GLUE_TASKS) <= set(REAL_DATASETS)
    assert GLUE_CLASSES == {'sst2': ('negative', 'positive'), **{t: spec[-1] for t, spec in GLUE_SPEC.items()}}
    assert GLUE_CLASSES['mnli'] == ('contradiction', 'entailment', 'neutral')              # GLUE's order, not HF datasets'
    for t in PAIR_TASKS:
        assert expected_layout(f'glue_{t}') == expected_layout(f'GLUE-{t}') == expected_layout(t)
        folder, files = GLUE_SPEC[t][:2]
        assert f'{folder}/' in expected_layout(t) and all(f in expected_layout(t) for f in files.values())


@pytest.mark.parametrize('task', PAIR_TASKS)
def test_glue_pair_round_trip(root, task):
    folder, files, headers, (col_a, col_b), label, codes, classes = GLUE_SPEC[task]
    for split, fname in files.items():
        f = root/'glue'/folder/fname
        assert f.read_text(encoding='utf-8').split('\n')[0] == headers[split]           # the fixture writes GLUE's header
        header, rows = _read_tsv(f)
        ds = get_real_dataset(task, root, split=split)
        assert isinstance(ds, TextPairDataset) and not isinstance(ds, TextDataset)
        assert (ds.name, ds.split, ds.root, ds.classes) == (task, split, root, list(classes))
        assert len(ds) == len(rows) == 3*len(classes)                                  # n=3 rows per class and split
        assert ds.sentences == [(r[col_a], r[col_b]) for r in rows]
        assert all(isinstance(p, tuple) and len(p) == 2 for p in ds.sentences)
        assert any('"' in s for p in ds.sentences for s in p)                           # bare quotes are text
        if split.startswith('test'):
            assert label not in header and ds.targets.tolist() == [-1]*len(rows)
        else:
            assert ds.targets.tolist() == [codes.index(r[label]) for r in rows]
            assert Counter(ds.targets.tolist()) == {c: 3 for c in range(len(classes))}
            assert [ds.classes[y] for y in ds.targets.tolist()] == [classes[codes.index(r[label])] for r in rows]
        id_col = 'index' if 'index' in header else 'id' if 'id' in header else None
        assert ds.ids == ([r[id_col] for r in rows] if id_col else None)
        (a, b), y = ds[len(ds) - 1]
        assert (a, b) == ds.sentences[-1] and y == int(ds.targets[-1]) and ds.y is ds.targets
        assert ds.skipped_lines == [] and ds.num_classes == len(classes)


def test_glue_unquoted_text(root):
    "QQP's fixture has questions that open a quote and never close it: read unquoted, every line is one row."
    f = root/'glue'/'QQP'/'train.tsv'
    n_lines = len(f.read_text().splitlines())
    ds = get_real_dataset('qqp', root)
    assert len(ds) == n_lines - 1 and any(q.startswith('"') and q.count('"') == 1 for p in ds.sentences for q in p)
    with open(f, newline='') as fh: quoted = list(csv.reader(fh, delimiter='\t'))   # csv's default quoting merges lines
    assert len(quoted) < n_lines


def test_mnli_splits_and_columns_by_name(root, tmp_path):
    d = root/'glue'/'MNLI'
    for alias, split, fname in (('dev_matched', 'val', 'dev_matched.tsv'), ('dev', 'val', 'dev_matched.tsv'),
                                ('validation_mismatched', 'val_mismatched', 'dev_mismatched.tsv'),
                                ('DEV_MISMATCHED', 'val_mismatched', 'dev_mismatched.tsv'), ('test_matched', 'test', 'test_matched.tsv'),
                                ('test_mismatched', 'test_mismatched', 'test_mismatched.tsv')):
        ds = get_real_dataset('multinli', root, split=alias)
        _, rows = _read_tsv(d/fname)
        assert ds.split == split and ds.sentences == [(r['sentence1'], r['sentence2']) for r in rows]
    mm = {r['genre'] for r in _read_tsv(d/'dev_mismatched.tsv')[1]}
    assert mm and mm.isdisjoint(r['genre'] for r in _read_tsv(d/'dev_matched.tsv')[1])   # matched vs mismatched genres
    with pytest.raises(ValueError, match=r"'dev_mismatched'.*train, val, test"): get_real_dataset('rte', root, split='dev_mismatched')
    with pytest.raises(ValueError, match='val_mismatched, test, test_mismatched'): get_real_dataset('mnli', root, split='dev_x')
    # columns are found by name: reverse their order and let every annotator label disagree with gold_label
    ref = get_real_dataset('mnli', root, split='val')
    header, rows = _read_tsv(d/'dev_matched.tsv')
    flip = {'contradiction': 'neutral', 'entailment': 'contradiction', 'neutral': 'entailment'}
    for r in rows:
        for k in range(1, 6): r[f'label{k}'] = flip[r['gold_label']]
    out = tmp_path/'glue'/'MNLI'; out.mkdir(parents=True)
    (out/'dev_matched.tsv').write_text('\n'.join('\t'.join(r[c] for c in header[::-1]) for r in [dict(zip(header, header))] + rows) + '\n')
    ds = get_real_dataset('mnli', tmp_path, split='val')
    assert ds.sentences == ref.sentences and torch.equal(ds.targets, ref.targets) and ds.ids == ref.ids


def test_glue_pair_transform_and_batches(root):
    ds = get_real_dataset('rte', root, split='val', transform=lambda p: ' [SEP] '.join(p))
    assert ds[2][0] == ds.sentences[2][0] + ' [SEP] ' + ds.sentences[2][1] and ds[2][1] == int(ds.targets[2])
    qnli = get_real_dataset('qnli', root)
    (a, b), y = next(iter(torch.utils.data.DataLoader(qnli, batch_size=4)))
    assert list(a) == [p[0] for p in qnli.sentences[:4]] and list(b) == [p[1] for p in qnli.sentences[:4]]
    assert torch.equal(y, qnli.targets[:4])
    with pytest.raises(ValueError, match='image_size does not apply to mrpc'): get_real_dataset('mrpc', root, image_size=32)
    with pytest.raises(ValueError, match="'raise' or 'skip'"): get_real_dataset('qqp', root, malformed='ignore')
    with pytest.raises(ValueError, match='pair'): TextPairDataset([('a', 'b', 'c')], [0], ['x', 'y'])
    with pytest.raises(DatasetFormatError, match='2 sentence pairs but 1 labels'): TextPairDataset([('a', 'b')]*2, [0], ['x', 'y'])


def _glue_error(task, root, **kw):
    with pytest.raises(DatasetFormatError) as ei: get_real_dataset(task, root, **kw)
    return str(ei.value)


@pytest.mark.parametrize('task', PAIR_TASKS)
def test_glue_pair_malformed_rows(root, tmp_path, task):
    folder, _, headers, _, label, codes, classes = GLUE_SPEC[task]
    _copy(root, tmp_path, 'glue')
    f = tmp_path/'glue'/folder/'train.tsv'
    lines = f.read_text().splitlines()
    n = len(headers['train'].split('\t'))

    def write(ls): f.write_text('\n'.join(ls) + '\n')
    bad = list(lines); bad[2] = bad[2].rsplit('\t', 1)[0]                                  # line 3: one field short
    write(bad)
    msg = _glue_error(task, tmp_path)
    assert f'{f}, line 3: {n - 1} tab-separated fields, expected {n}' in msg and headers['train'].replace('\t', '<TAB>') in msg
    assert "malformed='skip'" in msg
    ds = get_real_dataset(task, tmp_path, malformed='skip')                               # dropped on request, and recorded
    assert len(ds) == len(lines) - 2 and ds.skipped_lines == [3]
    assert ds.sentences == get_real_dataset(task, root).sentences[:1] + get_real_dataset(task, root).sentences[2:]
    bad = list(lines); bad[3] += '\textra'                                                # line 4: one field too many
    write(bad)
    assert f'line 4: {n + 1} tab-separated fields, expected {n}' in _glue_error(task, tmp_path)
    bad = ['', *lines[:2], '', *lines[2:]]                                                # blank lines are skipped ...
    bad[0], bad[1] = lines[0], ''
    write(bad)
    assert len(get_real_dataset(task, tmp_path)) == len(lines) - 1
    bad[5] = bad[5].rsplit('\t', 1)[0]                                                    # ... and still counted
    write(bad)
    assert f'{f}, line 6:' in _glue_error(task, tmp_path)
    header = lines[0].split('\t')
    row = lines[1].split('\t'); row[header.index(label)] = 'maybe'                        # line 2: an unknown label
    write([lines[0], '\t'.join(row), *lines[2:]])
    for kw in ({}, {'malformed': 'skip'}):                                                # never skipped
        msg = _glue_error(task, tmp_path, **kw)
        assert f"{f}, line 2: label 'maybe' in column {label!r}; expected one of {', '.join(codes)}" in msg
        assert all(c in msg for c in classes)
    renamed = [h + '_x' if h == label else h for h in header]                             # line 1: no label column
    write(['\t'.join(renamed), *lines[1:]])
    msg = _glue_error(task, tmp_path)
    assert f"{f}, line 1: the header has no column {label!r}" in msg and headers['train'].replace('\t', '<TAB>') in msg
    f.write_text('')
    assert 'no header line' in _glue_error(task, tmp_path)
    # the test file needs its sentence columns too
    t = tmp_path/'glue'/folder/GLUE_SPEC[task][1]['test']
    col_a = GLUE_SPEC[task][3][0]
    head, *body = t.read_text().split('\n')
    t.write_text('\n'.join(['\t'.join('text' if h == col_a else h for h in head.split('\t')), *body]))
    assert f"{t}, line 1: the header has no column {col_a!r}" in _glue_error(task, tmp_path, split='test')


def test_mrpc_byte_order_mark(root, tmp_path):
    "MRPC's train/dev files keep the header of Microsoft's file, which may start with a UTF-8 byte-order mark."
    _copy(root, tmp_path, 'glue')
    f = tmp_path/'glue'/'MRPC'/'train.tsv'
    f.write_bytes(b'\xef\xbb\xbf' + f.read_bytes())
    ds, ref = get_real_dataset('mrpc', tmp_path), get_real_dataset('mrpc', root)
    assert ds.sentences == ref.sentences and torch.equal(ds.targets, ref.targets)


@pytest.mark.parametrize('task', PAIR_TASKS)
def test_glue_pair_missing_files(root, tmp_path, task):
    folder, files = GLUE_SPEC[task][:2]
    _copy(root, tmp_path, 'glue')
    (tmp_path/'glue'/folder/files['val']).unlink()
    with pytest.raises(DatasetNotFoundError) as ei: get_real_dataset(task, tmp_path, split='val')
    msg = str(ei.value)
    assert f"missing file {tmp_path/'glue'/folder/files['val']}" in msg and expected_layout(task, tmp_path) in msg
    assert ei.value.dataset == task and 'never downloads' in msg
    assert len(get_real_dataset(task, tmp_path)) == len(get_real_dataset(task, root))         # the other splits still load
    if task == 'mnli':
        (tmp_path/'glue'/'MNLI'/'test_mismatched.tsv').unlink()
        assert len(get_real_dataset('mnli', tmp_path, split='test')) == 9
        with pytest.raises(DatasetNotFoundError, match='test_mismatched.tsv'): get_real_dataset('mnli', tmp_path, split='test_mismatched')


def test_glue_fixture_size_and_seed(tmp_path):
    d = write_fixture('mnli', tmp_path/'a', n=1, seed=5)
    assert d == tmp_path/'a'/'glue'/'MNLI' and sorted(p.name for p in d.iterdir()) == sorted(GLUE_SPEC['mnli'][1].values())
    assert all(len(get_real_dataset('mnli', tmp_path/'a', split=s)) == 3 for s in GLUE_SPEC['mnli'][1])
    write_fixture('mnli', tmp_path/'b', n=1, seed=5); write_fixture('mnli', tmp_path/'c', n=1, seed=6)
    read = lambda r: (r/'glue'/'MNLI'/'dev_matched.tsv').read_bytes()
    assert read(tmp_path/'a') == read(tmp_path/'b') != read(tmp_path/'c')

# ---------------------------------------------------------------- errors and the entry point
@pytest.mark.parametrize('name', REAL_DATASETS)
def test_missing_dataset_shows_layout(tmp_path, name):
    with pytest.raises(DatasetNotFoundError) as ei: get_real_dataset(name, tmp_path)
    msg = str(ei.value)
    assert isinstance(ei.value, FileNotFoundError)
    assert expected_layout(name, tmp_path) in msg and str(tmp_path) in msg and 'never downloads' in msg
    assert ei.value.dataset == name and ei.value.root == tmp_path


def test_expected_layout_names_the_files():
    assert 'train-images-idx3-ubyte' in expected_layout('mnist') and 'test_batch' in expected_layout('cifar10')
    assert 'list_eval_partition.txt' in expected_layout('celeba') and 'dataset_coco.json' in expected_layout('coco')
    assert 'HAM10000_metadata.csv' in expected_layout('isic2018') and 'no_tumor' in expected_layout('brain_tumor_mri')
    assert expected_layout('sst2', '/data/x').startswith('/data/x/\n')


def test_unknown_name_split_and_arguments(root):
    with pytest.raises(ValueError, match=r"'svhn'.*mnist, cifar10"): get_real_dataset('svhn', root)
    with pytest.raises(ValueError, match=r"'val'.*train, test"): get_real_dataset('mnist', root, split='val')
    with pytest.raises(ValueError, match='never downloads'): get_real_dataset('mnist', root, download=True)
    with pytest.raises(ValueError, match='either transform or image_size'):
        get_real_dataset('mnist', root, transform=lambda im: im, image_size=32)
    with pytest.raises(ValueError, match='svhn'): write_fixture('svhn', root)
    with pytest.raises(TypeError): get_real_dataset('mnist', root, label_type='fine')  # a keyword of another loader


def test_root_defaults_to_settings(root, monkeypatch):
    monkeypatch.setenv('TRUSTNAS_DATA_ROOT', str(root))
    ds = get_real_dataset('cifar10', split='test')
    assert ds.root == root and len(ds) == 20
    monkeypatch.setenv('TRUSTNAS_DATA_ROOT', str(root/'nowhere'))
    with pytest.raises(DatasetNotFoundError, match='nowhere'): get_real_dataset('cifar10')


def test_missing_data_root_is_a_clear_error(tmp_path, monkeypatch):
    "A data root that does not exist at all (e.g. settings.ini pointing nowhere) gives the layout, not a traceback."
    missing = tmp_path/'no'/'such'/'root'
    monkeypatch.setenv('TRUSTNAS_DATA_ROOT', str(missing))
    with pytest.raises(DatasetNotFoundError) as ei: get_real_dataset('cifar10')
    assert str(missing) in str(ei.value) and 'cifar-10-batches-py' in str(ei.value)

"Real-dataset loaders (trustnas_nb.loaders), tested on tiny fixtures written in the real on-disk formats."
import csv, json, os, pickle, shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from trustnas_nb.loaders import (REAL_DATASETS, BRAIN_TUMOR_CLASSES, CIFAR10_CLASSES, ISIC_CLASSES, DatasetFormatError,
                                 DatasetNotFoundError, expected_layout, get_real_dataset, read_idx, write_fixture, write_idx)

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

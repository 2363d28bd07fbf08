import gzip
import pickle
import re

import numpy as np
import pytest
import torch
import torchvision

from srtbench import data
from srtbench.errors import SrtbenchError


def fake_set(n=100):
    """Image i encodes i in its first two pixels (low byte, high byte)."""
    images = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n) % 256
    images[:, 0, 0, 1] = torch.arange(n) // 256
    return data.ImageSet(images, torch.arange(n) % 10)


def ids(x: torch.Tensor) -> torch.Tensor:
    """Example ids of a float batch made from `fake_set`."""
    px = (x[:, 0, 0, :2] * 255).round().long()
    return px[:, 0] + 256 * px[:, 1]


def test_split_sizes_disjoint_and_seeded():
    train = fake_set(100)
    lab, unl = data.split(train, 30, None, seed=3)
    assert len(lab) == 30 and len(unl) == 70
    ids_l = set(ids(lab.images.float() / 255).tolist())
    ids_u = set(ids(unl.images.float() / 255).tolist())
    assert not ids_l & ids_u and len(ids_l | ids_u) == 100
    lab2, unl2 = data.split(train, 30, None, seed=3)
    assert torch.equal(lab.images, lab2.images) and torch.equal(unl.images, unl2.images)
    lab3, _ = data.split(train, 30, None, seed=4)
    assert not torch.equal(lab.images, lab3.images)


def test_n_unlabeled_takes_a_prefix_of_the_rest():
    lab, unl = data.split(fake_set(100), 30, 20, seed=3)
    _, full = data.split(fake_set(100), 30, None, seed=3)
    assert len(unl) == 20 and torch.equal(unl.images, full.images[:20])


def test_unlabeled_set_carries_no_labels():
    _, unl = data.split(fake_set(100), 30, None, seed=0)
    assert not hasattr(unl, "labels")
    assert isinstance(unl.batch(torch.arange(5)), torch.Tensor)


@pytest.mark.parametrize("n_l, n_u, message", [
    (101, None, "--n-labeled 101 exceeds the 100 training examples"),
    (101, 0, "--n-labeled 101 exceeds the 100 training examples"),
    (30, 71, "--n-unlabeled 71 exceeds the 70 examples left after D_L"),
    (100, 1, "--n-unlabeled 1 exceeds the 0 examples left after D_L"),
])
def test_split_rejects_impossible_sizes(n_l, n_u, message):
    with pytest.raises(SrtbenchError, match=re.escape(message)):
        data.split(fake_set(100), n_l, n_u, seed=0)


def test_split_takes_every_possible_size():
    for n_l, n_u, sizes in ((30, 70, (30, 70)), (100, None, (100, 0)), (100, 0, (100, 0)), (1, 0, (1, 0))):
        lab, unl = data.split(fake_set(100), n_l, n_u, seed=0)
        assert (len(lab), len(unl)) == sizes


@pytest.mark.parametrize("kw, message", [
    ({"n_labeled": 0}, "--n-labeled must be positive, got 0"),
    ({"n_unlabeled": -1}, "--n-unlabeled must be >= 0, got -1"),
])
def test_data_config_rejects_impossible_sizes(kw, message):
    with pytest.raises(SrtbenchError, match=re.escape(message)):
        data.DataConfig(**kw)


def test_proportional_batches_split_each_batch():
    lab, unl = data.split(fake_set(600), 100, None, seed=0)
    sampler = data.ProportionalBatches(lab, unl, batch_size=60, seed=0)
    assert (sampler.b_l, sampler.b_u) == (10, 50)  # 60·100/600 labeled, the rest unlabeled
    batches = list(sampler.epoch(0))
    assert len(batches) == len(sampler) == 10
    for b in batches:
        assert len(b.x_labeled) == 10 and len(b.y_labeled) == 10 and len(b.x_unlabeled) == 50
    # one epoch sees every labeled and every unlabeled example exactly once
    seen_l = torch.cat([ids(b.x_labeled) for b in batches])
    assert len(seen_l.unique()) == 100
    seen_u = torch.cat([ids(b.x_unlabeled) for b in batches])
    assert len(seen_u.unique()) == 500


def test_batches_deterministic_and_resumable():
    lab, unl = data.split(fake_set(600), 100, None, seed=0)
    sampler = data.ProportionalBatches(lab, unl, batch_size=60, seed=5)
    a = list(sampler.epoch(2))
    b = list(sampler.epoch(2, start=4))
    assert all(torch.equal(x.x_unlabeled, y.x_unlabeled) for x, y in zip(a[4:], b))
    c = list(sampler.epoch(3))
    assert not torch.equal(a[0].x_labeled, c[0].x_labeled)


def test_ranks_partition_each_global_batch():
    lab, unl = data.split(fake_set(600), 100, None, seed=0)
    one = list(data.ProportionalBatches(lab, unl, 60, seed=1).epoch(0))
    r0 = list(data.ProportionalBatches(lab, unl, 60, seed=1, rank=0, world=2).epoch(0))
    r1 = list(data.ProportionalBatches(lab, unl, 60, seed=1, rank=1, world=2).epoch(0))
    for full, a, b in zip(one, r0, r1):
        merged = ids(torch.cat([a.x_unlabeled, b.x_unlabeled])).sort().values
        assert torch.equal(merged, ids(full.x_unlabeled).sort().values)


def test_labeled_only_batches_without_unlabeled():
    lab, _ = data.split(fake_set(100), 100, None, seed=0)
    sampler = data.ProportionalBatches(lab, None, batch_size=32)
    assert (sampler.b_l, sampler.b_u, len(sampler)) == (32, 0, 3)
    assert all(b.x_unlabeled is None for b in sampler.epoch(0))


def test_augment_crops_and_flips_without_changing_shape():
    """Appendix B: each output is a 32 × 32 crop of the zero-padded (4 px) image, left-right flipped or not."""
    x = torch.rand(64, 3, 32, 32) + 0.1  # no zero pixels: padding is told apart from the image
    out = data.augment(x, torch.Generator().manual_seed(0), pad=4)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))

    def crop(i, oy, ox, flip):
        c = padded[i, :, oy:oy + 32, ox:ox + 32]
        return c.flip(-1) if flip else c

    found = []
    for i in range(len(x)):
        matches = [(oy, ox, flip) for oy in range(9) for ox in range(9) for flip in (False, True)
                   if torch.equal(out[i], crop(i, oy, ox, flip))]
        assert len(matches) == 1, (i, matches)  # exactly one offset within the padding, flipped or not
        found += matches
    assert {flip for _, _, flip in found} == {False, True}
    assert len({(oy, ox) for oy, ox, _ in found}) > 10  # many of the 81 offsets, not only the centre (4, 4)
    assert torch.equal(out, data.augment(x, torch.Generator().manual_seed(0), pad=4))  # the generator decides


def test_fashion_mnist_reads_real_debian_files(fmnist_train, fmnist_test):
    assert fmnist_train.images.shape == (60000, 1, 28, 28) and fmnist_test.images.shape == (10000, 1, 28, 28)
    assert fmnist_train.images.dtype == torch.uint8
    assert torch.bincount(fmnist_test.labels).tolist() == [1000] * 10
    x, _ = fmnist_test.batch(torch.arange(8))
    assert x.min() >= 0 and x.max() <= 1 and x.dtype == torch.float32


def write_idx(path, array: np.ndarray, compress: bool):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(blob)
    else:
        path.write_bytes(blob)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_generated_idx_files(tmp_path, compress):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 10, 20)
    write_idx(raw / "t10k-images-idx3-ubyte", imgs, compress)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels, compress)
    ds = data.load("mnist", train=False, data_dir=tmp_path)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(imgs.astype(np.uint8)))
    assert torch.equal(ds.labels, torch.from_numpy(labels))


def test_missing_dataset_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("SRTBENCH_DATA", raising=False)
    with pytest.raises(SrtbenchError, match="--data-dir.*--download"):
        data.load("mnist", train=True, data_dir=tmp_path)


def test_cifar10_goes_through_torchvision(tmp_path, monkeypatch):
    """Generated batches in torchvision's CIFAR-10 format (its md5 check is the only thing bypassed)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (10, 3 * 32 * 32)).astype(np.uint8)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": imgs, "labels": list(range(10))}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": list(data.DATASETS.get("cifar10").classes)}, fh)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *a, **k: True)
    ds = data.load("cifar10", train=False, data_dir=tmp_path)
    assert ds.images.shape == (10, 3, 32, 32)
    assert torch.equal(ds.images[3], torch.from_numpy(imgs[3].reshape(3, 32, 32)))
    assert ds.labels.tolist() == list(range(10))


def test_rank_shares_round_to_the_rank_count():
    lab, unl = data.split(fake_set(600), 100, None, seed=0)
    # 128·100/600 = 21.3 labeled per batch; two ranks need an even count, so 22 + 106
    sampler = data.ProportionalBatches(lab, unl, batch_size=128, rank=1, world=2)
    assert (sampler.b_l, sampler.b_u) == (22, 106)
    b = next(iter(sampler.epoch(0)))
    assert len(b.x_labeled) == 11 and len(b.x_unlabeled) == 53
    with pytest.raises(SrtbenchError, match="divide by the 3 ranks"):
        data.ProportionalBatches(lab, unl, batch_size=128, world=3)

"""mIoU (spec B.8) on hand-made confusion matrices, the per-class table, and the DDP reduction that
counts every dataset index once although DistributedSampler pads ranks with repeated samples."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler

from hrnet_train.evaluation.miou import ConfusionAccumulator, SegScores, batch_confusion, iou_table, merge_confusions

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Rows = ground truth, columns = prediction. Class 2 occurs in neither: IoU 0 (it still counts in the mean).
HAND = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])


def test_scores_of_a_hand_made_matrix() -> None:
    scores = SegScores.from_confusion(HAND)
    # IoU_0 = 5 / (6 + 7 - 5) = 5/8; IoU_1 = 3 / (5 + 4 - 3) = 1/2; IoU_2 = 0 / max(1, 0) = 0.
    np.testing.assert_allclose(scores.iou, [5 / 8, 1 / 2, 0.0])
    assert scores.miou == pytest.approx((5 / 8 + 1 / 2) / 3)
    assert scores.pixel_accuracy == pytest.approx(8 / 11)
    assert scores.mean_accuracy == pytest.approx((5 / 6 + 3 / 5 + 0) / 3)
    assert scores.pixels == 11
    # Prediction-only class: IoU_1 = 0 / (0 + 4 - 0); the GT-only class 0 likewise 0.
    other = SegScores.from_confusion(np.array([[0, 4], [0, 0]]))
    np.testing.assert_allclose(other.iou, [0.0, 0.0])
    assert other.pixel_accuracy == 0.0
    assert scores.as_dict("val/") == {
        "val/mIoU": scores.miou, "val/pixel_acc": scores.pixel_accuracy, "val/mean_acc": scores.mean_accuracy
    }


def test_iou_table_lists_every_class_and_the_mean() -> None:
    table = iou_table(SegScores.from_confusion(HAND), ["road", "car", "sky"])
    lines = table.splitlines()
    assert lines[2] == "| 0 | road | 62.50 | 83.33 |"
    assert lines[3] == "| 1 | car | 50.00 | 60.00 |"
    assert lines[4] == "| 2 | sky | 0.00 | 0.00 |"
    assert lines[5] == "| | **mean** | **37.50** | **47.78** |"
    assert lines[-1] == "pixel accuracy 72.73 % over 11 labelled pixels"
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        iou_table(SegScores.from_confusion(HAND), ["a", "b"])


def test_batch_confusion_counts_per_sample_and_skips_ignore() -> None:
    labels = torch.tensor([[[0, 0, 1], [255, 2, 2]], [[1, 1, 1], [1, 255, 0]]])
    predictions = torch.tensor([[[0, 1, 1], [0, 2, 0]], [[1, 1, 0], [2, 2, 0]]])
    matrices = batch_confusion(predictions, labels, 3)
    np.testing.assert_array_equal(matrices[0], [[1, 1, 0], [0, 1, 0], [1, 0, 1]])
    np.testing.assert_array_equal(matrices[1], [[1, 0, 0], [1, 2, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match="label values outside 0..2"):
        batch_confusion(predictions, torch.full_like(labels, 3), 3)
    with pytest.raises(ValueError, match="predicted classes outside"):
        batch_confusion(torch.full_like(labels, 5), labels, 3)


def _fake_batch(index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (prediction, label) maps of dataset sample ``index``."""
    generator = torch.Generator().manual_seed(index)
    label = torch.randint(0, 4, (1, 6, 7), generator=generator)
    label[0, 0, 0] = 255
    return torch.randint(0, 4, (1, 6, 7), generator=generator), label


def test_padded_distributed_sampler_counts_every_index_once() -> None:
    size, world = 5, 2  # ranks get [0, 2, 4] and [1, 3, 0]: index 0 is a padded repeat
    reference = ConfusionAccumulator(4)
    for index in range(size):
        reference.add([index], *_fake_batch(index))
    ranks, naive = [], np.zeros((4, 4), dtype=np.int64)
    for rank in range(world):
        accumulator = ConfusionAccumulator(4)
        indices = list(DistributedSampler(range(size), num_replicas=world, rank=rank, shuffle=False))
        for index in indices:
            prediction, label = _fake_batch(index)
            accumulator.add([index], prediction, label)
            naive += batch_confusion(prediction, label, 4)[0].numpy()
        ranks.append(accumulator.per_sample)
    assert sum(len(per_sample) for per_sample in ranks) == size + 1  # the repeat is held twice
    assert naive.sum() > reference.confusion().sum()  # summing the ranks would count it twice
    np.testing.assert_array_equal(merge_confusions(ranks, 4), reference.confusion())
    assert reference.gather(world_size=1).sum() == size * (6 * 7 - 1)


def _gather_worker(rank: int, world: int, port: int, queue: mp.Queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        accumulator = ConfusionAccumulator(4)
        for index in DistributedSampler(range(5), num_replicas=world, rank=rank, shuffle=False):
            accumulator.add([index], *_fake_batch(index))
        queue.put((rank, accumulator.gather(world)))
    finally:
        dist.destroy_process_group()


def test_gather_over_two_gloo_processes_equals_one_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_gather_worker, args=(rank, 2, port, queue)) for rank in range(2)]
    for worker in workers:
        worker.start()
    results = dict(queue.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    reference = ConfusionAccumulator(4)
    for index in range(5):
        reference.add([index], *_fake_batch(index))
    for rank in (0, 1):
        np.testing.assert_array_equal(results[rank], reference.confusion())

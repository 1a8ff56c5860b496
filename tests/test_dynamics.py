import numpy as np
import pytest
import torch

from src.dynamics import euclidean_dist
from src.dynamics.euclidean_dist import distance_trajectories, dynamics_score, trajectory_centroids
from src.dynamics.marking import mark_noisy
from src.storage.row_file import RowFile


def brute_force(emb: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(emb), num_classes))
    for k in range(num_classes):
        centroid = emb[labels == k].mean(0)
        for i in range(len(emb)):
            out[i, k] = np.sqrt(((emb[i] - centroid) ** 2).sum())
    return out


def test_centroid_distances_equal_brute_force():
    rng = np.random.default_rng(0)
    emb, labels = rng.normal(size=(60, 7)), rng.integers(0, 4, 60)
    expected = brute_force(emb, labels, 4)
    emb_t, labels_t = torch.tensor(emb)[:, None], torch.tensor(labels)  # one epoch: [N, 1, D]
    centroids = trajectory_centroids(emb_t, labels_t, 4)[0]  # [C, D]
    assert np.allclose(torch.cdist(emb_t[:, 0].float(), centroids).numpy(), expected, atol=1e-5)
    own = distance_trajectories(emb_t, labels_t, 4)[0]
    assert np.allclose(own.numpy(), expected[np.arange(60), labels], atol=1e-5)


@pytest.mark.parametrize("chunk", [7, 1024])  # rows in chunks (7: uneven) or at once
@pytest.mark.parametrize("on_disk", [False, True])
def test_score_is_mean_plus_std_over_epochs(chunk, on_disk, monkeypatch, tmp_path):
    monkeypatch.setattr(euclidean_dist, "ROW_CHUNK", chunk)
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(5, 30, 4)).astype(np.float16)  # [E, N, D]
    labels = rng.integers(0, 3, 30)
    trajectory = np.concatenate([emb.transpose(1, 0, 2), np.ones((6, 5, 4), np.float16)])  # [N + 6, E, D]
    if on_disk:
        trajectory = RowFile.from_array(tmp_path / "t.npy", trajectory)
    distances = distance_trajectories(trajectory, torch.tensor(labels), 3)  # the first 30 rows only
    expected = np.stack([brute_force(emb[e].astype(np.float32), labels, 3)[np.arange(30), labels] for e in range(5)])
    assert np.allclose(distances.numpy(), expected, atol=1e-4)
    score = dynamics_score(distances).numpy()
    assert np.allclose(score, expected.mean(0) + expected.std(0, ddof=1), atol=1e-4)  # sample std, as torch.std
    assert not np.allclose(score, expected.mean(0) + expected.std(0), atol=1e-4)  # not the population one


def test_mark_noisy_takes_floor_of_ratio_times_n_largest():
    scores = torch.tensor([0.1, 5.0, 0.3, 4.0, 0.2, 3.0, 0.0])
    marked = mark_noisy(scores, 0.45)  # floor(0.45 * 7) = 3
    assert marked.sum() == 3
    assert set(np.flatnonzero(marked)) == {1, 3, 5}
    assert mark_noisy(np.array([2.0, 1.0, 2.0, 2.0]), 0.5).tolist() == [True, False, True, False]  # ties: earlier first
    assert mark_noisy(scores, 0.0).sum() == 0


def test_noisy_examples_score_higher_on_separable_data():
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=5, size=(3, 8))
    gold = rng.integers(0, 3, 300)
    noisy = gold.copy()
    noisy[:60] = (gold[:60] + 1) % 3
    emb = np.stack([centres[gold] + rng.normal(size=(300, 8)) for _ in range(4)], 1)  # [N, E, D]
    score = dynamics_score(distance_trajectories(emb, torch.tensor(noisy), 3))
    marked = mark_noisy(score, 0.2)
    assert marked[:60].mean() > 0.9


def test_score_of_one_epoch_is_the_distance():
    d = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.equal(dynamics_score(d), d[0])
    d2 = torch.tensor([[1.0, 2.0], [3.0, 2.0]])  # sample std of (1, 3) is sqrt(2)
    assert torch.allclose(dynamics_score(d2), torch.tensor([2.0 + 2.0 ** 0.5, 2.0]))


def test_per_class_marking_marks_each_labels_own_share_of_its_eligible_rows():
    from src.dynamics.marking import mark_noisy_per_class

    labels = np.array([0] * 10 + [1] * 4)
    scores = np.arange(14, dtype=float)  # class 1's rows score highest
    eligible = np.ones(14, dtype=bool)
    eligible[9] = False  # class 0's highest score is a trusted row
    marked = mark_noisy_per_class(scores, labels, np.array([0.3, 0.5]), eligible)
    # class 0: floor(0.3 * 9) = 2 of its 9 eligible rows (8 and 7, 9 being trusted); class 1: 2 of 4
    assert np.flatnonzero(marked).tolist() == [7, 8, 12, 13]
    # one global share of 4/14 would have taken class 1's four rows only
    assert np.flatnonzero(mark_noisy(scores, 4 / 14)).tolist() == [10, 11, 12, 13]

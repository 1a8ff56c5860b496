"""k-nearest-neighbour search: a matrix-product screen of all rows, then exact distances of the best.

Exact by default (a float32 screen): the neighbours, and so the kNN prior, are scikit-learn's
up to float32 ties. The speed layer may pass a bfloat16 `screen_dtype` (--approximate_knn):
faster where the CPU multiplies bf16 natively, but it changes a few percent of the neighbour
sets on real embeddings.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.neighbors import KNeighborsClassifier


def nearest_rows(query: torch.Tensor, fit: torch.Tensor, k: int, screen: int = 3,
                 chunk: int = 256, screen_dtype: torch.dtype = torch.float32) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `fit` nearest to each row of `query` (Euclidean): distances and indices,
    each [Q, k], nearest first. Rows may be stored in half precision: chunks are widened.

    For each chunk of queries one matrix product ranks every fit row by |f|^2/2 - q.f, on rows
    centred first (distances do not change, and the rounding is then relative to the data's
    spread, not its offset), in `screen_dtype`. Its best `screen * k` are then measured
    directly, |q - f| in fp32 on the rows as given, and the k nearest kept: the neighbours of
    scikit-learn's brute-force search, except where two distances tie to float32 rounding (and,
    with a bf16 screen, where its ranking pushed a true neighbour out of the screen).
    """
    count = min(screen * k, len(fit))
    dtype = screen_dtype
    centre = fit.mean(0, dtype=torch.float32)
    screen_rows = torch.empty(fit.shape, dtype=dtype)  # centred rows, [F, D]
    sq_norms = torch.empty(len(fit))
    for start in range(0, len(fit), chunk):  # widened a chunk at a time: no float32 copy of fit
        block = fit[start : start + chunk].float() - centre
        screen_rows[start : start + chunk] = block
        sq_norms[start : start + chunk] = (block * block).sum(1)
    fit_t = screen_rows.T  # [D, F]
    half_sq = sq_norms.mul_(0.5).to(dtype)  # [F]
    # results go straight into their place: small tensors kept between the chunks' large
    # temporaries would fragment the heap (resident memory grew chunk by chunk)
    distances = torch.empty(len(query), k)
    indices = torch.empty(len(query), k, dtype=torch.long)
    for start in range(0, len(query), chunk):
        q = query[start : start + chunk].float()  # [B, D]
        score = torch.addmm(half_sq[None], (q - centre).to(dtype), fit_t, alpha=-1)  # [B, F]
        idx = score.topk(count, dim=1, largest=False).indices  # [B, count]
        candidates = fit[idx].float()  # [B, count, D]
        dist = torch.cdist(q[:, None], candidates, compute_mode="donot_use_mm_for_euclid_dist")  # [B, 1, count]
        dist, order = dist[:, 0].topk(k, dim=1, largest=False)  # sorted, nearest first
        distances[start : start + len(q)] = dist
        indices[start : start + len(q)] = idx.gather(1, order)
    return distances.numpy(), indices.numpy()


def weighted_vote(distances: np.ndarray, indices: np.ndarray, labels: np.ndarray,
                  num_classes: int) -> np.ndarray:
    """Distance-weighted class probabilities [Q, C] from each query's neighbours (distances and
    indices [Q, k] into `labels`, the neighbours' labels), by scikit-learn's
    KNeighborsClassifier on the neighbour graph ("precomputed"): 1/distance weights, an exact
    match outweighing all others; zero columns for classes absent from `labels`."""
    queries, k = indices.shape
    graph = sp.csr_matrix((distances.ravel(), indices.ravel(), np.arange(0, queries * k + 1, k)),
                          shape=(queries, len(labels)))  # explicit zeros (exact matches) stay neighbours
    knn = KNeighborsClassifier(n_neighbors=k, weights="distance", metric="precomputed")
    # with a precomputed query graph only the number of fitted rows is read from the fit matrix
    knn.fit(sp.eye(len(labels), format="csr"), labels)
    proba = np.zeros((queries, num_classes))
    proba[:, knn.classes_] = knn.predict_proba(graph)
    return proba

"""Scale-out: several ranks (torch.distributed, gloo on the CPU) and large databases (faiss).

* Two processes, each with half of every global batch of 2b, train the same head (with a CRD
  distiller: trainable embeddings and memory banks) as one process with batch 2b: same loss
  trajectory, same final head; only rank 0 writes its checkpoint.
* Sharding: the ranks' shares of each batch are disjoint and make up the one-process batch.
* ``encode_sharded`` / ``all_gather_cat`` with shares of unequal size.
* ``metrics.map_at_k(backend="faiss")`` equals the default backend on codes with many ties.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import Dataset

from brcd_lib.training import distributed, engine, sources
from brcd_lib.config import TrainConfig
from brcd_lib.distill import get_distiller
from brcd_lib.metrics import hamming_distance, map_at_k, precision_at_k_curve
from brcd_lib.models import get_objective
from fakes import TinyNet

WORLD = 2
LOCAL_BATCH = 8               # b: each rank's share
GLOBAL_BATCH = WORLD * LOCAL_BATCH
N_TRAIN, DIM, BITS, EPOCHS = 72, 12, 8, 5


def _bank(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(6, DIM, generator=g) * 2
    base = centers[torch.arange(N_TRAIN) % 6]
    return torch.stack([base + 0.5 * torch.randn(N_TRAIN, DIM, generator=g) for _ in range(3)])


def _train(checkpoint: str | None) -> dict:
    """The same run in every process: teacher-free objective + CRD distillation."""
    student_bank, teacher_bank = _bank(0), _bank(1)
    net, teacher = TinyNet(d=DIM, bits=BITS, seed=0), TinyNet(d=DIM, bits=BITS, seed=1)
    with torch.no_grad():
        teacher_codes = torch.where(teacher.head_forward(teacher_bank[0]) >= 0, 1.0, -1.0)
    distiller = get_distiller("crd", embed_dim=16, n_negatives=32)
    distiller.prepare(engine.make_context(teacher_train_codes=teacher_codes, seed=0,
                                          cache_dir=None, cache_key="tiny"))
    source = sources.BankPairSource(student_bank=student_bank, teacher_bank=teacher_bank)
    cfg = TrainConfig(epochs=EPOCHS, batch_size=GLOBAL_BATCH, lr=5e-3, eval_every=1,
                      patience=100)
    evals = []

    def validate():
        evals.append(1)
        return {"symmetric": float(len(evals))}

    loop = engine.fit(name="tiny", net=net, objective=get_objective("cibhash"), source=source,
                      train_cfg=cfg, seed=0, validate=validate, teacher=teacher,
                      distiller=distiller, checkpoint_path=checkpoint, progress=False)
    return {"losses": [h["loss"] for h in loop.history],
            "head": {k: v.clone() for k, v in net.head.state_dict().items()},
            "distiller": {k: v.clone() for k, v in distiller.state_dict().items()
                          if isinstance(v, torch.Tensor)}}


class _Numbers(Dataset):
    """Item i -> (tensor [i, 2i], i): what compute_features expects of a dataset."""

    def __len__(self):
        return 11

    def __getitem__(self, i):
        return torch.tensor([float(i), 2.0 * i]), i


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as tdist

    torch.set_num_threads(1)
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                             world_size=WORLD)
    try:
        ctx = distributed.current()
        assert ctx is not None and ctx.rank == rank and ctx.world_size == WORLD
        result = _train(os.path.join(out_dir, f"rank{rank}.pt"))
        # database encoding: 11 items, shares of 6 and 5, gathered in dataset order
        result["encoded"] = distributed.encode_sharded(lambda x: x * 10, _Numbers(), ctx,
                                                       batch_size=4)
        share = torch.full((rank + 1, 2), float(rank))  # unequal shares: 1 row, 2 rows
        result["gathered"] = distributed.all_gather_cat(share, ctx)
        torch.save(result, os.path.join(out_dir, f"result{rank}.pt"))
    finally:
        tdist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_ranks_match_one_process(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mp.spawn(_worker, args=(str(tmp_path / "pg_init"), str(out)), nprocs=WORLD, join=True)
    ranks = [torch.load(out / f"result{r}.pt", weights_only=True) for r in range(WORLD)]

    single = _train(str(tmp_path / "single.pt"))
    assert len(single["losses"]) == EPOCHS
    for res in ranks:  # every rank follows the one-process trajectory
        torch.testing.assert_close(torch.tensor(res["losses"], dtype=torch.float64),
                                   torch.tensor(single["losses"], dtype=torch.float64),
                                   rtol=1e-5, atol=0)
        for name, value in single["head"].items():
            torch.testing.assert_close(res["head"][name], value, rtol=1e-5, atol=1e-6)
        for name, value in single["distiller"].items():  # CRD embeddings and memory banks
            torch.testing.assert_close(res["distiller"][name], value, rtol=1e-5, atol=1e-6)
    # the replicas are identical to each other
    for name, value in ranks[0]["head"].items():
        assert torch.equal(value, ranks[1]["head"][name])
    # only rank 0 wrote its checkpoint, and it holds the trained head
    assert (out / "rank0.pt").exists() and not (out / "rank1.pt").exists()
    ck = engine.load_checkpoint(str(out / "rank0.pt"))
    assert ck["epoch"] == EPOCHS and torch.equal(ck["head"]["head.weight"],
                                                 ranks[0]["head"]["weight"])
    # sharded encoding and uneven gathers
    expected = torch.stack([torch.tensor([i * 10.0, i * 20.0]) for i in range(11)])
    for res in ranks:
        assert torch.equal(res["encoded"], expected)
        assert torch.equal(res["gathered"], torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]))


def test_shards_are_disjoint_and_make_up_the_global_batch():
    bank = torch.arange(3 * 37, dtype=torch.float32).view(3, 37, 1)
    source = sources.BankPairSource(student_bank=bank, teacher_bank=bank + 1000)
    for world in (2, 3):
        whole = list(source.epoch(epoch=4, seed=7, batch_size=12))
        shares = [list(source.epoch(epoch=4, seed=7, batch_size=12, shard=(r, world)))
                  for r in range(world)]
        assert all(len(s) == len(whole) == 3 for s in shares)
        for step, pb in enumerate(whole):
            parts = [s[step] for s in shares]
            idx = torch.cat([p.index for p in parts])
            assert torch.equal(idx, pb.index)  # disjoint, in one-process order
            assert len(set(idx.tolist())) == len(idx)
            for k in (0, 1):
                assert torch.equal(torch.cat([p.student[k] for p in parts]), pb.student[k])
                assert torch.equal(torch.cat([p.teacher[k] for p in parts]), pb.teacher[k])


def test_image_source_shards_use_the_one_process_permutation():
    class Pairs(Dataset):
        def __len__(self):
            return 30

        def __getitem__(self, i):
            x = torch.full((1, 2, 2), float(i))
            return (x, x), i

    source = sources.ImagePairSource(dataset=Pairs(), student_features=lambda x: x.flatten(1),
                                    teacher_features=None)
    whole = [pb.index for pb in source.epoch(epoch=2, seed=5, batch_size=8)]
    shares = [[pb.index for pb in source.epoch(epoch=2, seed=5, batch_size=8, shard=(r, 2))]
              for r in range(2)]
    assert len(whole) == 3  # 30 // 8, the last partial batch dropped as in one process
    for step, idx in enumerate(whole):
        assert torch.equal(torch.cat([shares[0][step], shares[1][step]]), idx)


def test_shard_range_covers_everything_once():
    for n in (0, 1, 5, 11, 64):
        for world in (1, 2, 3, 4):
            parts = [distributed.shard_range(n, r, world) for r in range(world)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_single_process_helpers_are_no_ops():
    assert distributed.current() is None and distributed.is_main()
    assert distributed.rank() == 0 and distributed.world_size() == 1
    t = torch.arange(4.0)
    assert distributed.all_gather_cat(t) is t
    distributed.barrier()
    with distributed.main_process_first():
        pass
    assert distributed.init_from_env() is None  # no WORLD_SIZE: nothing to initialise


# ---------------------------------------------------------------------------------------------
# large databases: the faiss backend
# ---------------------------------------------------------------------------------------------
def _tied_codes(rng, n, bits, n_protos=12, flip=0.04):
    protos = np.where(rng.random((n_protos, bits)) < 0.5, -1.0, 1.0)
    codes = protos[rng.integers(0, n_protos, n)]
    return codes * np.where(rng.random((n, bits)) < flip, -1.0, 1.0)


@pytest.mark.parametrize("bits,n_db,k", [(16, 4000, 100), (12, 600, 1000), (64, 20000, 1000),
                                         (10, 3000, None), (8, 2500, 7)])
def test_faiss_backend_equals_default_backend_with_many_ties(bits, n_db, k):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(bits * 1000 + n_db)
    q, db = _tied_codes(rng, 60, bits), _tied_codes(rng, n_db, bits)
    q_labels = np.eye(6, dtype=np.uint8)[rng.integers(0, 6, 60)]
    db_labels = np.eye(6, dtype=np.uint8)[rng.integers(0, 6, n_db)]
    if k is not None and k < n_db:  # the K-th distance is tied across the cut for most queries
        dist = hamming_distance(q, db)
        kth = np.sort(dist, axis=1)[:, k - 1:k]
        straddles = ((dist < kth).sum(1) < k) & ((dist <= kth).sum(1) > k)
        assert straddles.mean() > 0.5
    want = map_at_k(q, db, q_labels, db_labels, k)
    assert map_at_k(q, db, q_labels, db_labels, k, backend="faiss") == want
    packed = np.packbits(db > 0, axis=1)
    assert map_at_k(q, packed, q_labels, db_labels, k, backend="faiss", packed=True,
                    code_length=bits) == want
    ks = [1, 10, 50]
    assert np.array_equal(precision_at_k_curve(q, db, q_labels, db_labels, ks, backend="faiss"),
                          precision_at_k_curve(q, db, q_labels, db_labels, ks))

"""IndexBatcher: device-resident batching by index, with its position in the epoch as state."""
from __future__ import annotations

import io

import pytest
import torch

from lvmgraph.data.loader import IndexBatcher


def batcher(n: int = 10, batch_size: int = 4, seed: int = 0, **kw) -> IndexBatcher:
    fields = {"i": torch.arange(n), "x": torch.arange(n, dtype=torch.float32).mul(10).view(n, 1, 1)}
    return IndexBatcher(fields, batch_size=batch_size, device=torch.device("cpu"), seed=seed, **kw)


def ids(batch: dict) -> list[int]:
    return batch["i"].tolist()


def test_every_sample_once_per_epoch_and_reshuffled():
    b = batcher(n=12, batch_size=4, drop_last=False)
    first = [ids(b.next()) for _ in range(3)]
    second = [ids(b.next()) for _ in range(3)]
    assert b.epoch == 1
    for ep in (first, second):
        flat = [i for batch in ep for i in batch]
        assert sorted(flat) == list(range(12))
    assert first != second  # a new permutation each epoch
    assert [i for batch in first for i in batch] != list(range(12))


def test_fields_stay_aligned():
    b = batcher(n=10, batch_size=4)
    for _ in range(6):
        batch = b.next()
        assert torch.equal(batch["x"].flatten(), batch["i"].float() * 10)
        assert batch["x"].shape[1:] == (1, 1)


def test_drop_last_skips_the_incomplete_batch():
    b = batcher(n=10, batch_size=4, drop_last=True)
    seen = []
    for ep in range(3):
        batches = [ids(b.next()) for _ in range(2)]  # 10 // 4 full batches per epoch
        assert all(len(x) == 4 for x in batches)
        flat = [i for x in batches for i in x]
        assert len(set(flat)) == 8  # no repeats within an epoch
        assert b.epoch == ep
        seen.append(flat)
    assert len({tuple(s) for s in seen}) == 3


def test_keep_last_yields_the_short_batch_then_a_new_epoch():
    b = batcher(n=10, batch_size=4, drop_last=False)
    sizes = [len(b.next()["i"]) for _ in range(7)]
    assert sizes == [4, 4, 2, 4, 4, 2, 4]
    assert b.epoch == 2


def test_no_shuffle_keeps_the_order():
    b = batcher(n=6, batch_size=3, shuffle=False)
    assert [ids(b.next()) for _ in range(4)] == [[0, 1, 2], [3, 4, 5], [0, 1, 2], [3, 4, 5]]


def test_batch_larger_than_the_data():
    with pytest.raises(ValueError, match="batch_size 11 is larger than the dataset \\(10\\)"):
        batcher(n=10, batch_size=11, drop_last=True)
    b = batcher(n=10, batch_size=11, drop_last=False)
    for ep in range(3):
        assert sorted(ids(b.next())) == list(range(10))
        assert b.epoch == ep


def test_seeded_order_independent_of_the_global_rng():
    def first_epoch(seed: int) -> list[int]:
        b = batcher(n=10, batch_size=5, seed=seed)
        return ids(b.next()) + ids(b.next())

    torch.manual_seed(1)
    reference = first_epoch(3)
    torch.manual_seed(2)
    state = torch.get_rng_state()
    assert first_epoch(3) == reference
    assert torch.equal(torch.get_rng_state(), state), "batching consumed the global RNG"
    assert first_epoch(4) != reference


@pytest.mark.parametrize("taken", [0, 1, 2, 3, 5])  # at the start, mid-epoch, at an epoch boundary, later
def test_state_dict_round_trip_continues_identically(taken):
    a = batcher(n=10, batch_size=3, seed=0)
    for _ in range(taken):
        a.next()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # the state survives a checkpoint (weights-only load)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    b = batcher(n=10, batch_size=3, seed=99)  # another seed: everything must come from the state
    b.load_state_dict(state)
    expected = [ids(a.next()) for _ in range(12)]  # crosses several epoch boundaries
    assert [ids(b.next()) for _ in range(12)] == expected
    assert (a.epoch, a.position) == (b.epoch, b.position)


def test_state_dict_is_a_copy():
    a = batcher(n=10, batch_size=3)
    state = a.state_dict()
    snapshot = state["order"].clone()
    for _ in range(8):
        a.next()
    assert torch.equal(state["order"], snapshot)

"""Caching device-memory pool: bookkeeping checked on the CPU against a fake raw allocator."""
import pickle
import threading

import numpy
import pytest

from gpu_dl import backend
from gpu_dl.backend import memory
from gpu_dl.backend.memory_pool import (
    CachingPool,
    OutOfMemoryError,
    RawOutOfMemory,
    round_size,
    segment_size,
)
from gpu_dl.backend.memory_report import format_bytes

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class FakeDevice:
    """A raw allocator over a fake address space: bump addresses, a byte capacity, forced failures.

    Segments are handed out back to back, so a pool that merged blocks across
    segment boundaries would break the tiling checks.
    """

    def __init__(self, capacity=1 << 40):
        self.capacity = capacity
        self.next_address = 0x7F00_0000_0000
        self.live = {}            # address -> bytes
        self.mallocs, self.frees = [], []
        self.fail = 0             # fail this many of the next mallocs
        self.on_malloc = None     # called at the start of every malloc

    def used(self):
        return sum(self.live.values())

    def malloc(self, nbytes):
        if self.on_malloc is not None:
            self.on_malloc()
        if self.fail:
            self.fail -= 1
            raise RawOutOfMemory("forced failure")
        if self.used() + nbytes > self.capacity:
            raise RawOutOfMemory("fake device full")
        address = self.next_address
        self.next_address += nbytes
        self.live[address] = nbytes
        self.mallocs.append(nbytes)
        return address

    def free(self, address, nbytes):
        assert self.live.pop(address) == nbytes, "raw free with the wrong size"
        self.frees.append(nbytes)

    def memory_info(self):
        return self.capacity - self.used(), self.capacity


def check_consistent(pool, raw, live):
    """Invariants between the pool's snapshot, its statistics, the fake device and the caller's live blocks."""
    snap = pool.snapshot()
    stats = pool.stats()
    assert {s["address"]: s["size"] for s in snap} == raw.live
    allocated = {}
    intervals = []
    free_blocks = 0
    for seg in snap:
        expected = seg["address"]
        previous_free = False
        for block in seg["blocks"]:
            assert block["address"] == expected, "blocks must tile their segment"
            assert block["size"] > 0 and block["size"] % 512 == 0
            expected += block["size"]
            is_free = block["state"] == "free"
            assert not (is_free and previous_free), "adjacent free blocks must be merged"
            previous_free = is_free
            free_blocks += is_free
            if not is_free:
                allocated[block["address"]] = block
                intervals.append((block["address"], block["address"] + block["size"]))
        assert expected == seg["address"] + seg["size"]
    intervals.sort()
    for (_, end), (start, _) in zip(intervals, intervals[1:]):
        assert end <= start, "live blocks overlap"
    assert set(allocated) == set(live)
    for address, requested in live.items():
        assert allocated[address]["requested"] == requested
        assert allocated[address]["size"] >= round_size(requested)
    assert stats["allocated_bytes"] == sum(b["size"] for b in allocated.values())
    assert stats["requested_bytes"] == sum(live.values())
    assert stats["active_blocks"] == len(live)
    assert stats["reserved_bytes"] == sum(raw.live.values())
    assert stats["segments"] == len(raw.live)
    assert stats["cached_bytes"] == stats["reserved_bytes"] - stats["allocated_bytes"]
    assert sum(len(fl.keys) for fl in pool._free_lists.values()) == free_blocks


def test_size_classes():
    assert [round_size(n) for n in (0, 1, 511, 512, 513, 1000, MiB)] == [512, 512, 512, 512, 1024, 1024, MiB]
    assert segment_size(512) == 2 * MiB
    assert segment_size(MiB) == 2 * MiB                  # largest small request
    assert segment_size(MiB + 512) == 2 * MiB            # smallest large request
    assert segment_size(2 * MiB + 512) == 4 * MiB
    assert segment_size(17 * MiB) == 18 * MiB


def test_small_requests_share_one_segment():
    raw = FakeDevice()
    pool = CachingPool(raw)
    a, b, c = pool.malloc(1), pool.malloc(100), pool.malloc(1000)
    assert raw.mallocs == [2 * MiB]
    assert (b - a, c - b) == (512, 512)
    stats = pool.stats()
    assert stats["allocated_bytes"] == 512 + 512 + 1024
    assert stats["requested_bytes"] == 1101
    assert (stats["cache_misses"], stats["cache_hits"]) == (1, 2)
    check_consistent(pool, raw, {a: 1, b: 100, c: 1000})


def test_freed_block_is_reused_without_a_device_allocation():
    raw = FakeDevice()
    pool = CachingPool(raw)
    a = pool.malloc(3000)
    pool.free(a)
    b = pool.malloc(2900)
    assert b == a
    assert raw.mallocs == [2 * MiB]
    assert pool.stats()["cache_hits"] == 1


def test_best_fit_takes_the_smallest_hole_that_fits():
    raw = FakeDevice()
    pool = CachingPool(raw)
    sizes = [1024, 512, 4096, 512, 2048, 512]
    blocks = [pool.malloc(n) for n in sizes]
    for i in (0, 2, 4):                   # holes of 1024, 4096 and 2048 bytes between live blocks
        pool.free(blocks[i])
    assert pool.malloc(1500) == blocks[4]  # 1536 bytes: the 2048 hole, not the 4096 one nor the tail
    assert pool.malloc(4000) == blocks[2]
    assert raw.mallocs == [2 * MiB]


def test_large_blocks_split_and_merge_back():
    raw = FakeDevice()
    pool = CachingPool(raw)
    pool.free(pool.malloc(8 * MiB))        # one cached 8 MiB segment
    a, b, c = (pool.malloc(2 * MiB) for _ in range(3))
    assert (b - a, c - b) == (2 * MiB, 2 * MiB)
    assert raw.mallocs == [8 * MiB]
    pool.free(a)
    pool.free(b)
    d = pool.malloc(4 * MiB)               # fits only in a and b merged
    assert d == a and raw.mallocs == [8 * MiB]
    check_consistent(pool, raw, {c: 2 * MiB, d: 4 * MiB})
    pool.free(c)
    pool.free(d)
    [segment] = pool.snapshot()
    assert segment["blocks"] == [{"address": a, "size": 8 * MiB, "requested": 0, "state": "free"}]


def test_large_remainder_not_worth_keeping_stays_with_the_block():
    raw = FakeDevice()
    pool = CachingPool(raw)
    a = pool.malloc(3 * MiB // 2)          # 2 MiB segment, 0.5 MiB rest: not split
    stats = pool.stats()
    assert (stats["allocated_bytes"], stats["requested_bytes"]) == (2 * MiB, 3 * MiB // 2)
    assert [len(s["blocks"]) for s in pool.snapshot()] == [1]
    b = pool.malloc(MiB // 2)              # small request: never from the large pool
    assert raw.mallocs == [2 * MiB, 2 * MiB]
    check_consistent(pool, raw, {a: 3 * MiB // 2, b: MiB // 2})


def test_fragmented_segment_gets_a_new_segment_for_a_request_larger_than_any_hole():
    raw = FakeDevice()
    pool = CachingPool(raw)
    quarter = 512 * KiB
    blocks = [pool.malloc(quarter) for _ in range(4)]   # fills one 2 MiB small segment
    pool.free(blocks[0])
    pool.free(blocks[2])                                # two 512 KiB holes, not adjacent
    big = pool.malloc(MiB)                              # fits no hole: a second segment
    assert raw.mallocs == [2 * MiB, 2 * MiB]
    assert not blocks[0] <= big < blocks[0] + 2 * MiB
    filler = pool.malloc(MiB)                           # takes the second segment's 1 MiB tail
    pool.free(blocks[1])                                # merges the holes into 1.5 MiB
    again = pool.malloc(MiB)
    assert again == blocks[0] and len(raw.mallocs) == 2
    check_consistent(pool, raw, {big: MiB, filler: MiB, blocks[3]: quarter, again: MiB})


def test_empty_cache_releases_only_wholly_free_segments():
    raw = FakeDevice()
    pool = CachingPool(raw)
    small = pool.malloc(1000)
    large = pool.malloc(5 * MiB)
    pool.free(large)
    pool.free(pool.malloc(MiB))                         # served from the small segment of `small`
    assert pool.empty_cache() == 6 * MiB                # only the large segment is wholly free
    assert raw.frees == [6 * MiB]
    assert list(raw.live.values()) == [2 * MiB]
    check_consistent(pool, raw, {small: 1000})
    pool.free(small)
    assert pool.empty_cache() == 2 * MiB
    assert raw.live == {}
    stats = pool.stats()
    assert (stats["reserved_bytes"], stats["segments"], stats["num_device_frees"]) == (0, 0, 2)


def test_stats_and_peaks_are_exact():
    raw = FakeDevice()
    pool = CachingPool(raw)
    a = pool.malloc(100)                    # small segment, 512-byte block
    b = pool.malloc(3 * MiB)                # 4 MiB segment; the 1 MiB rest is too small to split off
    pool.free(a)
    c = pool.malloc(200)                    # cache hit
    pool.free(b)
    pool.empty_cache()                      # releases the large segment
    expected = {
        "allocated_bytes": 512, "peak_allocated_bytes": 512 + 4 * MiB,
        "total_allocated_bytes": 512 + 4 * MiB + 512, "total_freed_bytes": 512 + 4 * MiB,
        "requested_bytes": 200, "peak_requested_bytes": 200 + 3 * MiB,
        "reserved_bytes": 2 * MiB, "peak_reserved_bytes": 6 * MiB,
        "total_reserved_bytes": 6 * MiB, "total_released_bytes": 4 * MiB,
        "active_blocks": 1, "peak_active_blocks": 2, "num_allocs": 3, "num_frees": 2,
        "segments": 1, "peak_segments": 2, "num_device_allocs": 2, "num_device_frees": 1,
        "cache_hits": 1, "cache_misses": 2, "num_oom_retries": 0, "num_ooms": 0,
        "cached_bytes": 2 * MiB - 512,
    }
    assert pool.stats() == expected
    pool.reset_peak_stats()
    stats = pool.stats()
    assert (stats["peak_allocated_bytes"], stats["peak_reserved_bytes"], stats["peak_segments"]) == (512, 2 * MiB, 1)
    check_consistent(pool, raw, {c: 200})


def test_out_of_memory_releases_the_cache_and_retries_once():
    raw = FakeDevice(capacity=10 * MiB)
    pool = CachingPool(raw)
    pool.free(pool.malloc(6 * MiB))         # 6 MiB cached, too small for the next request
    a = pool.malloc(8 * MiB)                # 6 + 8 > 10: fails, releases the cache, succeeds
    assert raw.frees == [6 * MiB]
    stats = pool.stats()
    assert (stats["num_oom_retries"], stats["num_ooms"], stats["reserved_bytes"]) == (1, 0, 8 * MiB)
    raw.fail = 1                            # a forced single failure also succeeds on retry
    b = pool.malloc(100)
    assert pool.stats()["num_oom_retries"] == 2
    check_consistent(pool, raw, {a: 8 * MiB, b: 100})


def test_second_failure_raises_a_clear_error_and_keeps_the_pool_consistent():
    raw = FakeDevice(capacity=8 * MiB)
    pool = CachingPool(raw, device_memory_info=lambda: (123 * MiB, 80 * GiB), device="CUDA device 3")
    small = pool.malloc(512 * KiB)          # 512 KiB allocated, 1.5 MiB cached in its segment
    with pytest.raises(OutOfMemoryError) as info:
        pool.malloc(16 * MiB)
    err = info.value
    assert isinstance(err, MemoryError)
    message = str(err)
    for text in ("16.00 MiB", "512.00 KiB", "1.50 MiB", "123.00 MiB", "80.00 GiB", "batch_size", "CUDA device 3"):
        assert text in message, text
    assert (err.requested, err.allocated, err.cached, err.device_free) == (16 * MiB, 512 * KiB, 3 * MiB // 2, 123 * MiB)
    stats = pool.stats()
    assert (stats["num_ooms"], stats["num_oom_retries"]) == (1, 1)
    check_consistent(pool, raw, {small: 512 * KiB})
    other = pool.malloc(4 * MiB)            # the pool still works after the error
    check_consistent(pool, raw, {small: 512 * KiB, other: 4 * MiB})
    assert str(pickle.loads(pickle.dumps(err))) == message


@pytest.mark.parametrize("info", [None, lambda: None, lambda: 1 / 0])
def test_out_of_memory_message_without_device_figures_says_unknown(info):
    raw = FakeDevice(capacity=MiB)
    pool = CachingPool(raw, device_memory_info=info)
    with pytest.raises(OutOfMemoryError, match="unknown free memory.*batch_size"):
        pool.malloc(100)
    check_consistent(pool, raw, {})


def test_bad_frees_and_sizes_are_rejected():
    pool = CachingPool(FakeDevice())
    a = pool.malloc(10)
    pool.free(a)
    with pytest.raises(ValueError, match="not a live block"):
        pool.free(a)
    with pytest.raises(ValueError, match="not a live block"):
        pool.free(12345)
    for bad in (-1, 1.5, True, "8"):
        with pytest.raises(ValueError, match="nbytes"):
            pool.malloc(bad)


def test_finaliser_release_during_malloc_is_deferred_not_deadlocked():
    raw = FakeDevice()
    pool = CachingPool(raw)
    victim = pool.malloc(5 * MiB)
    keep = pool.malloc(100)
    # Garbage collection may run a block's finaliser while malloc holds the lock.
    raw.on_malloc = lambda: pool.release_later(victim)
    new = pool.malloc(MiB)                  # a cache hit in the small segment: no raw malloc
    result = {}
    worker = threading.Thread(target=lambda: result.update(big=pool.malloc(9 * MiB)))
    worker.start()                          # needs a raw malloc: the release happens inside it
    worker.join(timeout=10)
    assert not worker.is_alive(), "release_later blocked on the pool's own lock"
    raw.on_malloc = None
    big = result["big"]
    check_consistent(pool, raw, {keep: 100, new: MiB, big: 9 * MiB})
    pool.release_later(keep)                # lock free: released at once
    assert pool.stats()["active_blocks"] == 2


def test_streams_do_not_share_cached_blocks():
    raw = FakeDevice()
    pool = CachingPool(raw)
    a = pool.malloc(1000, stream=1)
    pool.free(a)
    b = pool.malloc(1000, stream=2)
    assert b != a and len(raw.mallocs) == 2
    assert pool.malloc(1000, stream=1) == a


def test_random_operations_keep_every_invariant():
    gen = numpy.random.default_rng(7)
    raw = FakeDevice(capacity=96 * MiB)
    pool = CachingPool(raw, device_memory_info=raw.memory_info)
    live = {}
    ooms = 0
    for step in range(3000):
        action = gen.random()
        if action < 0.5 or not live:
            if gen.random() < 0.8:
                nbytes = int(gen.integers(0, 64 * KiB)) if gen.random() < 0.7 else int(gen.integers(0, MiB + 1))
            else:
                nbytes = int(gen.integers(MiB + 1, 12 * MiB))
            try:
                address = pool.malloc(nbytes, stream=int(gen.integers(0, 2)))
            except OutOfMemoryError:
                ooms += 1
            else:
                assert address not in live
                live[address] = nbytes
        elif action < 0.98:
            address = list(live)[int(gen.integers(len(live)))]
            pool.free(address)
            del live[address]
        else:
            pool.empty_cache()
        if step % 50 == 0:
            check_consistent(pool, raw, live)
    check_consistent(pool, raw, live)
    stats = pool.stats()
    assert stats["num_ooms"] == ooms
    assert stats["cache_hits"] > 0 and stats["num_device_allocs"] > 1
    for address in list(live):
        pool.free(address)
    pool.empty_cache()
    assert raw.live == {} and pool.stats()["allocated_bytes"] == 0


def test_threads_share_one_pool_safely():
    raw = FakeDevice()
    pool = CachingPool(raw)
    kept = {}

    def work(seed):
        gen = numpy.random.default_rng(seed)
        mine = {}
        for _ in range(400):
            if mine and gen.random() < 0.5:
                address = next(iter(mine))
                pool.free(address)
                del mine[address]
            else:
                nbytes = int(gen.integers(1, 3 * MiB))
                mine[pool.malloc(nbytes)] = nbytes
        kept.update(mine)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_consistent(pool, raw, kept)


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 512, 1023, 1536, 2 * MiB, 3 * GiB + GiB // 4, None)] == [
        "0 B", "512 B", "1023 B", "1.50 KiB", "2.00 MiB", "3.25 GiB", "unknown"]


def test_memory_summary_table_of_a_pool(monkeypatch):
    raw = FakeDevice()
    pool = CachingPool(raw)
    a = pool.malloc(3 * MiB)                # 4 MiB segment, whole block
    pool.free(pool.malloc(1000))
    pool.malloc(1000)                       # cache hit
    pool.free(a)
    monkeypatch.setattr(memory, "_current_pool", lambda device=None: ("CUDA device 0", pool))
    text = backend.memory_summary()
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1, "every line of the table has the same width"
    assert "gpu_dl device memory summary, CUDA device 0" in text

    def row(label):
        [line] = [line for line in lines if line.startswith("| " + label)]
        return [cell.strip() for cell in line.strip("|").split("|")][1:]

    assert row("Allocated memory") == ["1.00 KiB", "4.00 MiB", "4.00 MiB", "4.00 MiB"]
    assert row("Reserved memory") == ["6.00 MiB", "6.00 MiB", "6.00 MiB", "0 B"]
    assert row("Device allocations") == ["2", "2", "2", "0"]
    assert row("Active blocks") == ["1", "2", "3", "2"]
    assert "Cache hits: 1 (33.3% of requests)" in text
    assert "Out-of-memory errors: 0" in text
    assert backend.memory_stats()["cache_hits"] == 1
    assert backend.empty_cache() == 4 * MiB


def test_cpu_backend_has_no_device_pool():
    previous = backend.get_device()
    backend.set_device("cpu")
    try:
        assert "no device memory pool" in backend.memory_summary()
        assert backend.memory_stats() == {}
        assert backend.empty_cache() == 0
        assert backend.install_allocator() is False
    finally:
        backend.set_device(previous)


def test_freed_block_waits_whole_on_a_quick_list_for_its_size():
    raw = FakeDevice()
    pool = CachingPool(raw)
    a, b = pool.malloc(3000), pool.malloc(3000)
    pool.free(a)
    pool.free(b)                                         # neighbours, yet not merged: both wait whole
    assert pool._quick_count == 2 and all(len(fl.keys) == 1 for fl in pool._free_lists.values())
    stats = pool.stats()
    assert (stats["allocated_bytes"], stats["active_blocks"], stats["cached_bytes"]) == (0, 0, 2 * MiB)
    assert pool.malloc(3000) == b and pool.malloc(2900) == a   # last freed first, same rounded size
    assert pool._quick_count == 0 and raw.mallocs == [2 * MiB]
    assert pool.stats()["cache_hits"] == 3                # b from the segment's tail, then b and a again
    check_consistent(pool, raw, {a: 2900, b: 3000})


def test_quick_list_key_is_the_request_size_the_block_served():
    raw = FakeDevice()
    pool = CachingPool(raw)
    a = pool.malloc(3 * MiB)                             # a whole 4 MiB segment: the rest is not split off
    pool.free(a)
    assert pool.malloc(3 * MiB) == a                     # found by its 3 MiB request, not its 4 MiB size
    assert pool._quick_count == 0 and raw.mallocs == [4 * MiB]


def test_other_sizes_merge_the_quick_lists_before_best_fit_or_a_new_segment():
    raw = FakeDevice()
    pool = CachingPool(raw)
    quarter = 512 * KiB
    blocks = [pool.malloc(quarter) for _ in range(4)]    # one 2 MiB small segment, full
    pool.free(blocks[1])
    pool.free(blocks[2])
    merged = pool.malloc(MiB)                            # no quick list of 1 MiB: the two holes merge
    assert merged == blocks[1] and raw.mallocs == [2 * MiB] and pool._quick_count == 0
    check_consistent(pool, raw, {blocks[0]: quarter, merged: MiB, blocks[3]: quarter})


def test_empty_cache_releases_segments_whose_blocks_wait_on_quick_lists():
    raw = FakeDevice()
    pool = CachingPool(raw)
    blocks = [pool.malloc(MiB // 2) for _ in range(4)]
    for address in blocks:
        pool.free(address)
    assert pool._quick_count == 4
    assert pool.empty_cache() == 2 * MiB and raw.live == {} and pool._quick_count == 0
    assert pool.stats()["reserved_bytes"] == 0


def test_out_of_memory_retry_merges_quick_lists_and_releases_their_segments():
    raw = FakeDevice(capacity=4 * MiB)
    pool = CachingPool(raw)
    pool.free(pool.malloc(MiB // 2))                     # a small segment, its only block quick-listed
    big = pool.malloc(3 * MiB)                           # 2 + 4 MiB > 4 MiB: the retry frees the small one
    assert raw.frees == [2 * MiB] and pool.stats()["num_oom_retries"] == 1
    check_consistent(pool, raw, {big: 3 * MiB})

"""Caching device-memory pool: bookkeeping checked on the CPU against a fake raw allocator."""
import pickle
import threading

import numpy
import pytest

from gpu_dl import backend
from gpu_dl.backend import memory, memory_pool
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


def quick_listed(pool):
    """The pool's quick-listed blocks (address -> block), after checking every quick list's invariants."""
    found = {}
    for stream, lists in pool._quick.items():
        for served, blocks in lists.items():
            for block in blocks:
                assert block.address not in found, "a block is on two quick lists, or twice on one"
                assert pool._blocks.get(block.address) is block, "a quick-listed block is no longer in the pool"
                assert block.state == memory_pool._QUICK
                assert (block.served, block.segment.stream) == (served, stream), "quick list of the wrong key"
                assert served % 512 == 0 and served <= block.size
                if block.segment.small:
                    assert block.size == served, "a small block is split to exactly the size it served"
                else:
                    assert block.size - served <= MiB, "only a remainder not worth splitting stays with a block"
                found[block.address] = block
    on_no_list = [b.address for b in pool._blocks.values() if b.state == memory_pool._QUICK and b.address not in found]
    assert not on_no_list, "a block marked quick is on no quick list"
    return found


def check_consistent(pool, raw, live, merged=False):
    """Invariants between the pool's snapshot, its statistics, its free and quick lists, the fake device
    and the caller's live blocks. ``merged``: the quick lists were just merged (nothing may wait on them)."""
    snap = pool.snapshot()
    stats = pool.stats()
    quick = quick_listed(pool)        # after snapshot and stats: they drain the finalisers' queue
    if merged:
        assert not quick
    assert {s["address"]: s["size"] for s in snap} == raw.live
    allocated = {}
    intervals = []
    free_listed = {}                  # (small, stream) -> {(size, address)} of free blocks on no quick list
    seen_quick = set()
    for seg in snap:
        expected = seg["address"]
        previous_free = previous_quick = False
        for block in seg["blocks"]:
            assert block["address"] == expected, "blocks must tile their segment"
            assert block["size"] > 0 and block["size"] % 512 == 0
            expected += block["size"]
            is_free = block["state"] == "free"
            is_quick = block["address"] in quick
            assert not is_quick or is_free, "a quick-listed block is shown allocated"
            assert not (is_free and previous_free and not (is_quick or previous_quick)), (
                "adjacent free blocks must be merged unless one of them waits on a quick list")
            previous_free, previous_quick = is_free, is_quick
            if is_quick:
                seen_quick.add(block["address"])
                assert block["size"] == quick[block["address"]].size
            if is_free:
                assert block["requested"] == 0
                if not is_quick:
                    free_listed.setdefault((seg["pool"] == "small", seg["stream"]), set()).add(
                        (block["size"], block["address"]))
            else:
                allocated[block["address"]] = block
                intervals.append((block["address"], block["address"] + block["size"]))
        assert expected == seg["address"] + seg["size"]
    assert seen_quick == set(quick), "a quick-listed block is in no segment"
    for key, free_list in pool._free_lists.items():
        assert free_list.keys == sorted(free_list.keys)
        assert set(free_list.keys) == free_listed.pop(key, set()), "free list and free blocks disagree"
        assert len(set(free_list.keys)) == len(free_list.keys)
    assert not free_listed, "free blocks of a (pool, stream) without a free list"
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
    return quick


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
    assert pool.empty_cache() == 0         # moves the quick-listed holes to the free list; releases nothing
    assert not quick_listed(pool)
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
    pool.free(d)                           # d, c and the 2 MiB tail: free, two of them quick-listed
    whole = pool.malloc(8 * MiB)           # only the three merged fit: served there, no new segment
    assert whole == a and raw.mallocs == [8 * MiB]
    check_consistent(pool, raw, {whole: 8 * MiB})
    pool.free(whole)
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

    class Count(int):
        pass

    b = pool.malloc(Count(700))                  # an int subclass is an int
    assert pool.stats()["requested_bytes"] == 700 and type(pool.snapshot()[0]["blocks"][0]["requested"]) is int
    pool.free(b)


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
    slow = []                                # requests no quick list served
    uncached = pool._malloc_uncached
    pool._malloc_uncached = lambda *args: slow.append(args) or uncached(*args)
    live = {}
    sizes = {}                               # live address -> its block's size
    ooms = 0
    # statistics kept here, independently of the pool's
    expect = dict.fromkeys(("num_allocs", "num_frees", "total_allocated_bytes", "total_freed_bytes",
                            "peak_allocated_bytes", "peak_requested_bytes", "peak_active_blocks",
                            "peak_reserved_bytes", "peak_segments"), 0)
    most_quick = 0
    for step in range(3000):
        action = gen.random()
        if action < 0.5 or not live:
            if gen.random() < 0.8:
                # a few recurring sizes, as training has, and arbitrary ones
                if gen.random() < 0.5:
                    nbytes = int(gen.choice([512, 3000, 40 * KiB, 300 * KiB, MiB]))
                else:
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
                sizes[address] = pool._blocks[address].size
                expect["num_allocs"] += 1
                expect["total_allocated_bytes"] += sizes[address]
        elif action < 0.98:
            address = list(live)[int(gen.integers(len(live)))]
            if gen.random() < 0.5:
                pool.free(address)
            else:
                pool.release_later(address)  # the finaliser's way; the lock is free, so at once
            del live[address]
            expect["num_frees"] += 1
            expect["total_freed_bytes"] += sizes.pop(address)
        else:
            pool.empty_cache()
            check_consistent(pool, raw, live, merged=True)
        for key, now in (("allocated_bytes", sum(sizes.values())), ("requested_bytes", sum(live.values())),
                         ("active_blocks", len(live)), ("reserved_bytes", sum(raw.live.values())),
                         ("segments", len(raw.live))):
            expect["peak_" + key] = max(expect["peak_" + key], now)
        if step % 50 == 0:
            most_quick = max(most_quick, len(check_consistent(pool, raw, live)))
    check_consistent(pool, raw, live)
    stats = pool.stats()
    assert stats["num_ooms"] == ooms
    assert {key: stats[key] for key in expect} == expect
    assert stats["cache_misses"] == stats["num_device_allocs"] + ooms    # a miss asks the device for a segment
    assert stats["cache_hits"] == stats["num_allocs"] - stats["num_device_allocs"]
    assert stats["cache_hits"] > 0 and stats["num_device_allocs"] > 1
    assert most_quick > 0 and len(slow) < stats["num_allocs"] - 100, "the quick lists were hardly in play"
    for address in list(live):
        pool.free(address)
    pool.empty_cache()
    assert raw.live == {} and pool.stats()["allocated_bytes"] == 0


@pytest.mark.parametrize("release", ["free", "release_later"])
def test_threads_share_one_pool_safely(release):
    raw = FakeDevice()
    pool = CachingPool(raw)
    give_back = getattr(pool, release)
    kept = {}

    def work(seed):
        gen = numpy.random.default_rng(seed)
        mine = {}
        for _ in range(400):
            if mine and gen.random() < 0.5:
                address = next(iter(mine))
                give_back(address)       # release_later queues it when another thread holds the lock
                del mine[address]
            else:
                if gen.random() < 0.5:
                    nbytes = int(gen.choice([1000, 70 * KiB, 2 * MiB]))     # recurring sizes
                else:
                    nbytes = int(gen.integers(1, 3 * MiB))
                mine[pool.malloc(nbytes)] = nbytes
        kept.update(mine)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_consistent(pool, raw, kept)     # its snapshot frees what is still queued
    stats = pool.stats()
    assert stats["num_allocs"] - stats["num_frees"] == len(kept) == stats["active_blocks"]


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
    assert set(quick_listed(pool)) == {a, b}
    stats = pool.stats()
    assert (stats["allocated_bytes"], stats["active_blocks"], stats["cached_bytes"]) == (0, 0, 2 * MiB)
    [segment] = pool.snapshot()                          # shown free, as they are; the snapshot merges nothing
    assert segment["blocks"][:2] == [{"address": a, "size": 3072, "requested": 0, "state": "free"},
                                     {"address": b, "size": 3072, "requested": 0, "state": "free"}]
    assert set(quick_listed(pool)) == {a, b}
    assert pool.malloc(3000) == b and pool.malloc(2900) == a   # last freed first, same rounded size
    assert not quick_listed(pool) and raw.mallocs == [2 * MiB]
    assert pool.stats()["cache_hits"] == 3                # b from the segment's tail, then b and a again
    check_consistent(pool, raw, {a: 2900, b: 3000})


def test_quick_list_key_is_the_request_size_the_block_served():
    raw = FakeDevice()
    pool = CachingPool(raw)
    a = pool.malloc(3 * MiB)                             # a whole 4 MiB segment: the rest is not split off
    pool.free(a)
    assert pool.malloc(3 * MiB) == a                     # found by its 3 MiB request, not its 4 MiB size
    assert not quick_listed(pool) and raw.mallocs == [4 * MiB]


def test_a_size_no_quick_list_holds_takes_best_fit_over_the_free_lists_and_leaves_the_quick_lists():
    raw = FakeDevice()
    pool = CachingPool(raw)
    blocks = [pool.malloc(n) for n in (1024, 512, 4096, 512, 2048, 512)]
    for i in (0, 2, 4):
        pool.free(blocks[i])
    tail = blocks[-1] + 512
    assert pool.malloc(1500) == tail                     # the free list holds only the tail: no merge needed
    assert set(quick_listed(pool)) == {blocks[0], blocks[2], blocks[4]}
    assert [pool.malloc(n) for n in (2048, 4096, 1024)] == [blocks[4], blocks[2], blocks[0]]
    assert raw.mallocs == [2 * MiB] and pool.stats()["cache_hits"] == 9
    check_consistent(pool, raw, {blocks[1]: 512, blocks[3]: 512, blocks[5]: 512, tail: 1500,
                                 blocks[4]: 2048, blocks[2]: 4096, blocks[0]: 1024})


def test_quick_lists_merge_when_the_free_lists_cannot_serve_before_a_new_segment():
    raw = FakeDevice()
    pool = CachingPool(raw)
    quarter = 512 * KiB
    blocks = [pool.malloc(quarter) for _ in range(3)]    # one 2 MiB small segment, a 512 KiB tail free-listed
    pool.free(blocks[1])
    pool.free(blocks[2])                                 # quick-listed, not merged with the free tail
    assert set(quick_listed(pool)) == {blocks[1], blocks[2]}
    merged = pool.malloc(MiB)                            # fits neither the tail nor a quick list: merge first
    assert merged == blocks[1] and raw.mallocs == [2 * MiB] and not quick_listed(pool)
    check_consistent(pool, raw, {blocks[0]: quarter, merged: MiB}, merged=True)
    pool.free(merged)                                    # quick-listed again, whole, beside the free 512 KiB
    again = pool.malloc(3 * quarter // 2)                # 768 KiB: only the two merged fit
    assert again == blocks[1] and raw.mallocs == [2 * MiB]
    too_big = pool.malloc(MiB)                           # 768 KiB left: nothing fits even merged, a new segment
    assert raw.mallocs == [2 * MiB, 2 * MiB] and not blocks[0] <= too_big < blocks[0] + 2 * MiB
    check_consistent(pool, raw, {blocks[0]: quarter, again: 3 * quarter // 2, too_big: MiB}, merged=True)


def test_repeated_training_steps_are_served_by_the_quick_lists_alone():
    """The same allocations every step: after the first step, no best fit, no merge, no split."""
    raw = FakeDevice()
    pool = CachingPool(raw)
    slow = []
    uncached = pool._malloc_uncached
    pool._malloc_uncached = lambda *args: slow.append(args) or uncached(*args)
    gen = numpy.random.default_rng(3)
    sizes = [int(s) for s in numpy.geomspace(512, 4 * MiB, 12)]
    full = [sizes[i % len(sizes)] for i in gen.permutation(40)]
    short = [n // 3 if i % 2 else n for i, n in enumerate(full)]   # an epoch's last, smaller batch

    def step(pattern):
        live = []
        for i, nbytes in enumerate(pattern):
            live.append(pool.malloc(nbytes))
            if i % 3 == 2:                               # some arrays die during the pass, as a finaliser frees
                pool.release_later(live.pop(len(live) // 2))
        for address in reversed(live):
            pool.release_later(address)

    step(full)
    devices = len(raw.mallocs)
    for _ in range(10):
        del slow[:]
        step(full)
        assert not slow, "a repeated step left the quick lists"
    step(short)                                          # new sizes: best fit and merges
    step(full)                                           # back: at most one step to settle
    for _ in range(5):
        del slow[:]
        step(full)
        assert not slow, "the quick lists did not settle after a step of other sizes"
    assert len(raw.mallocs) <= devices + 1
    stats = pool.stats()
    assert stats["num_allocs"] == stats["num_frees"] == 17 * len(full) + len(short)
    assert stats["cache_hits"] == stats["num_allocs"] - len(raw.mallocs)
    check_consistent(pool, raw, {})


def test_empty_cache_releases_segments_whose_blocks_wait_on_quick_lists():
    raw = FakeDevice()
    pool = CachingPool(raw)
    blocks = [pool.malloc(MiB // 2) for _ in range(4)]
    for address in blocks:
        pool.free(address)
    assert set(quick_listed(pool)) == set(blocks)
    assert pool.empty_cache() == 2 * MiB and raw.live == {} and not quick_listed(pool)
    assert pool.stats()["reserved_bytes"] == 0
    check_consistent(pool, raw, {}, merged=True)


def test_out_of_memory_retry_merges_quick_lists_and_releases_their_segments():
    raw = FakeDevice(capacity=4 * MiB)
    pool = CachingPool(raw)
    pool.free(pool.malloc(MiB // 2))                     # a small segment, its only block quick-listed
    big = pool.malloc(3 * MiB)                           # 2 + 4 MiB > 4 MiB: the retry frees the small one
    assert raw.frees == [2 * MiB] and pool.stats()["num_oom_retries"] == 1
    check_consistent(pool, raw, {big: 3 * MiB})

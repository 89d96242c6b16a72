"""A caching device-memory pool: the bookkeeping only, over an abstract raw allocator.

Requests are rounded up to multiples of 512 bytes. Requests of at most 1 MiB
are served from the small pool, whose segments are 2 MiB; larger ones from the
large pool, whose segments are the request rounded up to a multiple of 2 MiB.
Keeping the two apart stops small, long-lived blocks from pinning large
segments. A request takes the smallest cached free block of its pool and
stream that fits (best fit) and splits off the rest when the rest is worth
keeping; a freed block merges with free neighbours in its segment. Segments go
back to the raw allocator only when wholly free, on ``empty_cache()`` or when a
raw allocation fails.

Training asks for the same sizes every step, so a freed block first goes on a
quick list for the request size it served, whole: the next request of that
size takes it back in O(1), without the merge and the split. Quick-listed
blocks are free and cached for every statistic. They merge into the free
lists before any request of a size no quick list holds (so best fit still
sees every hole, and the device is asked for a new segment only when the
merged pool cannot serve), before
``empty_cache()`` releases segments and before ``snapshot()``, so
fragmentation and out-of-memory behaviour are those of the merging pool.

The raw allocator is any object with ``malloc(nbytes) -> int address`` (raising
``RawOutOfMemory`` when the device is full) and ``free(address, nbytes)``.
"""
from __future__ import annotations

import bisect
import collections
import gc
import threading

from .memory_report import format_bytes

ROUND_BYTES = 512                 # every block is a multiple of this
SMALL_REQUEST_BYTES = 1 << 20     # requests up to this size use the small pool
SMALL_SEGMENT_BYTES = 2 << 20     # segment size of the small pool
LARGE_SEGMENT_ROUND = 2 << 20     # large segments are multiples of this


class RawOutOfMemory(Exception):
    """Raised by a raw allocator when the device cannot provide the bytes asked for."""


class OutOfMemoryError(MemoryError):
    """The device is out of memory even after the pool released its cached blocks."""

    def __init__(self, requested, allocated, cached, device_free=None, device_total=None,
                 device="the device", segment_bytes=None):
        self.requested = int(requested)
        self.allocated = int(allocated)
        self.cached = int(cached)
        self.device_free = device_free
        self.device_total = device_total
        self.device = device
        self.segment_bytes = segment_bytes
        if device_free is None:
            free_text = "unknown free memory"
        else:
            free_text = f"{format_bytes(device_free)} free of {format_bytes(device_total)} total"
        segment_text = ""
        if segment_bytes is not None and segment_bytes != self.requested:
            segment_text = f" (a {format_bytes(segment_bytes)} segment)"
        super().__init__(
            f"out of memory on {device}: tried to allocate {format_bytes(self.requested)}"
            f"{segment_text}; gpu_dl's pool holds {format_bytes(self.allocated)} allocated to live "
            f"arrays and {format_bytes(self.cached)} cached (its free segments were already released "
            f"and the allocation retried); {device} has {free_text}. Use a smaller batch_size "
            "(for example half of it in fit/evaluate/predict) or a smaller model, or delete arrays "
            "that are no longer needed and call gpu_dl.backend.empty_cache()."
        )

    def __reduce__(self):
        return (type(self), (self.requested, self.allocated, self.cached, self.device_free,
                             self.device_total, self.device, self.segment_bytes))


def round_size(nbytes: int) -> int:
    """The block size serving a request of ``nbytes`` (at least one 512-byte unit)."""
    return max(ROUND_BYTES, -(-nbytes // ROUND_BYTES) * ROUND_BYTES)


def segment_size(block_bytes: int) -> int:
    """The raw allocation made for a rounded request that no cached block can serve."""
    if block_bytes <= SMALL_REQUEST_BYTES:
        return SMALL_SEGMENT_BYTES
    return -(-block_bytes // LARGE_SEGMENT_ROUND) * LARGE_SEGMENT_ROUND


class _Segment:
    __slots__ = ("address", "size", "small", "stream")

    def __init__(self, address, size, small, stream):
        self.address, self.size, self.small, self.stream = address, size, small, stream


class _Block:
    """A run of bytes inside a segment; the blocks of a segment form a linked list in address order.

    ``served`` is the rounded request size the block was last split for (its quick-list key);
    ``quick`` says it is free on a quick list, neither merged nor on a free list.
    """
    __slots__ = ("address", "size", "requested", "segment", "prev", "next", "free", "served", "quick")

    def __init__(self, address, size, segment, prev=None, next=None):
        self.address, self.size, self.segment = address, size, segment
        self.prev, self.next = prev, next
        self.requested = 0
        self.free = True
        self.served = size
        self.quick = False


class _FreeList:
    """Free blocks of one (pool, stream), sorted by (size, address) for best-fit lookup by bisection."""
    __slots__ = ("keys",)

    def __init__(self):
        self.keys = []

    def add(self, block):
        bisect.insort(self.keys, (block.size, block.address))

    def remove(self, block):
        key = (block.size, block.address)
        i = bisect.bisect_left(self.keys, key)
        if i == len(self.keys) or self.keys[i] != key:
            raise AssertionError(f"block {block.address:#x} missing from its free list")
        del self.keys[i]

    def best_fit(self, size):
        """The (size, address) of the smallest free block of at least ``size`` bytes, or None."""
        i = bisect.bisect_left(self.keys, (size, -1))
        return self.keys[i] if i < len(self.keys) else None


_COUNTERS = (
    "allocated_bytes", "peak_allocated_bytes", "total_allocated_bytes", "total_freed_bytes",
    "requested_bytes", "peak_requested_bytes",
    "reserved_bytes", "peak_reserved_bytes", "total_reserved_bytes", "total_released_bytes",
    "active_blocks", "peak_active_blocks", "num_allocs", "num_frees",
    "segments", "peak_segments", "num_device_allocs", "num_device_frees",
    "cache_hits", "cache_misses", "num_oom_retries", "num_ooms",
)


class CachingPool:
    """Caches device memory in segments and hands out blocks of them; thread-safe (one lock).

    ``raw``: the raw allocator. ``device_memory_info``: optional callable giving
    the device's ``(free, total)`` bytes for out-of-memory messages. ``device``:
    how messages name the device.
    """

    def __init__(self, raw, device_memory_info=None, device="the device"):
        self._raw = raw
        self._device_memory_info = device_memory_info
        self.device = device
        self._lock = threading.Lock()
        self._pending = collections.deque()   # addresses released while the lock was busy
        self._blocks = {}                     # address -> _Block, free and allocated
        self._segments = {}                   # base address -> _Segment
        self._free_lists = {}                 # (small, stream) -> _FreeList
        self._quick = {}                      # (served size, stream) -> freed whole blocks, last freed last
        self._quick_count = 0
        self._stats = dict.fromkeys(_COUNTERS, 0)

    # -- public API ---------------------------------------------------------

    def malloc(self, nbytes: int, stream: int = 0) -> int:
        """Address of a block of at least ``nbytes`` bytes, for work ordered on ``stream``."""
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
            raise ValueError(f"nbytes must be a non-negative int, got {nbytes!r}.")
        size = round_size(nbytes)
        small = size <= SMALL_REQUEST_BYTES
        with self._lock:
            if self._pending:
                self._drain_pending()
            reusable = self._quick.get((size, stream))
            if reusable:
                block = reusable.pop()
                block.quick = False
                self._quick_count -= 1
                self._stats["cache_hits"] += 1
            else:
                # A size with no quick-listed block: best fit over everything free, merged.
                self._merge_quick()
                block = self._take_cached(size, small, stream)
                if block is None:
                    self._stats["cache_misses"] += 1
                    block = self._new_segment(size, small, stream, nbytes)
                else:
                    self._stats["cache_hits"] += 1
                self._split(block, size)
                block.served = size
            block.free = False
            block.requested = nbytes
            self._count_alloc(block)
            return block.address

    def free(self, address: int) -> None:
        """Return the block at ``address`` to the cache."""
        with self._lock:
            self._drain_pending()
            self._free_locked(address)

    def release_later(self, address: int) -> None:
        """Free from a finaliser: never waits for the lock, so it is safe while the lock is held.

        Garbage collection can run a finaliser in the middle of ``malloc``; the
        address is queued and freed by the next call that holds the lock.
        """
        self._pending.append(address)
        if self._lock.acquire(blocking=False):
            try:
                self._drain_pending()
            finally:
                self._lock.release()

    def empty_cache(self) -> int:
        """Give every wholly free segment back to the raw allocator; returns the bytes released."""
        with self._lock:
            self._drain_pending()
            self._merge_quick()
            return self._release_free_segments()

    def stats(self) -> dict:
        """Counters in bytes and counts; ``cached_bytes`` is reserved but not allocated."""
        with self._lock:
            self._drain_pending()
            out = dict(self._stats)
        out["cached_bytes"] = out["reserved_bytes"] - out["allocated_bytes"]
        return out

    def reset_peak_stats(self) -> None:
        """Set every peak to its current value."""
        with self._lock:
            s = self._stats
            for key in ("allocated_bytes", "requested_bytes", "reserved_bytes", "active_blocks", "segments"):
                s["peak_" + key] = s[key]

    def snapshot(self) -> list:
        """Every segment with its blocks in address order (like ``torch.cuda.memory_snapshot``)."""
        with self._lock:
            self._drain_pending()
            self._merge_quick()   # a snapshot shows the pool as merging leaves it
            out = []
            for base in sorted(self._segments):
                seg = self._segments[base]
                blocks, block = [], self._blocks[base]
                while block is not None:
                    blocks.append({"address": block.address, "size": block.size,
                                   "requested": block.requested,
                                   "state": "free" if block.free else "allocated"})
                    block = block.next
                out.append({"address": base, "size": seg.size, "stream": seg.stream,
                            "pool": "small" if seg.small else "large", "blocks": blocks})
            return out

    # -- bookkeeping (caller holds the lock) -------------------------------

    def _free_list(self, small, stream):
        key = (small, stream)
        free_list = self._free_lists.get(key)
        if free_list is None:
            free_list = self._free_lists[key] = _FreeList()
        return free_list

    def _list(self, block):
        self._free_list(block.segment.small, block.segment.stream).add(block)

    def _unlist(self, block):
        self._free_list(block.segment.small, block.segment.stream).remove(block)

    def _take_cached(self, size, small, stream):
        free_list = self._free_lists.get((small, stream))
        found = free_list.best_fit(size) if free_list is not None else None
        if found is None:
            return None
        block = self._blocks[found[1]]
        free_list.remove(block)
        return block

    def _new_segment(self, size, small, stream, nbytes):
        seg_bytes = segment_size(size)
        address = self._raw_malloc(seg_bytes, nbytes)
        segment = _Segment(address, seg_bytes, small, stream)
        self._segments[address] = segment
        block = self._blocks[address] = _Block(address, seg_bytes, segment)
        s = self._stats
        s["reserved_bytes"] += seg_bytes
        s["total_reserved_bytes"] += seg_bytes
        s["segments"] += 1
        s["num_device_allocs"] += 1
        s["peak_reserved_bytes"] = max(s["peak_reserved_bytes"], s["reserved_bytes"])
        s["peak_segments"] = max(s["peak_segments"], s["segments"])
        return block

    def _raw_malloc(self, seg_bytes, nbytes):
        try:
            return self._raw.malloc(seg_bytes)
        except RawOutOfMemory:
            pass
        # Arrays that are unreachable but not yet collected still hold blocks:
        # collect them (their finalisers queue their addresses), then release.
        self._stats["num_oom_retries"] += 1
        gc.collect()
        self._drain_pending()
        self._merge_quick()
        self._release_free_segments()
        try:
            return self._raw.malloc(seg_bytes)
        except RawOutOfMemory as exc:
            self._stats["num_ooms"] += 1
            raise self._out_of_memory(nbytes, seg_bytes) from exc

    def _out_of_memory(self, nbytes, seg_bytes):
        free = total = None
        if self._device_memory_info is not None:
            try:
                info = self._device_memory_info()
                if info is not None:
                    free, total = (int(v) for v in info)
            except Exception:  # the message must still be raised when the query fails
                free = total = None
        s = self._stats
        return OutOfMemoryError(nbytes, s["allocated_bytes"], s["reserved_bytes"] - s["allocated_bytes"],
                                free, total, self.device, seg_bytes)

    def _split(self, block, size):
        rest = block.size - size
        worth_keeping = rest >= ROUND_BYTES if block.segment.small else rest > SMALL_REQUEST_BYTES
        if not worth_keeping:
            return
        tail = _Block(block.address + size, rest, block.segment, prev=block, next=block.next)
        if block.next is not None:
            block.next.prev = tail
        block.next = tail
        block.size = size
        self._blocks[tail.address] = tail
        self._list(tail)

    def _count_alloc(self, block):
        s = self._stats
        s["allocated_bytes"] += block.size
        s["total_allocated_bytes"] += block.size
        s["requested_bytes"] += block.requested
        s["active_blocks"] += 1
        s["num_allocs"] += 1
        s["peak_allocated_bytes"] = max(s["peak_allocated_bytes"], s["allocated_bytes"])
        s["peak_requested_bytes"] = max(s["peak_requested_bytes"], s["requested_bytes"])
        s["peak_active_blocks"] = max(s["peak_active_blocks"], s["active_blocks"])

    def _free_locked(self, address):
        block = self._blocks.get(address)
        if block is None or block.free:
            raise ValueError(f"address {address:#x} is not a live block of this pool (double free?).")
        s = self._stats
        s["allocated_bytes"] -= block.size
        s["total_freed_bytes"] += block.size
        s["requested_bytes"] -= block.requested
        s["active_blocks"] -= 1
        s["num_frees"] += 1
        block.free, block.requested, block.quick = True, 0, True
        key = (block.served, block.segment.stream)
        reusable = self._quick.get(key)
        if reusable is None:
            self._quick[key] = [block]
        else:
            reusable.append(block)
        self._quick_count += 1

    def _merge_quick(self):
        """Move every quick-listed block to the free lists, merged with its free neighbours."""
        if not self._quick_count:
            return
        for blocks in self._quick.values():
            for block in blocks:
                block.quick = False
                self._coalesce(block)
        self._quick.clear()
        self._quick_count = 0

    def _coalesce(self, block):
        """Merge a free block with its free, not quick-listed neighbours and list the result.

        A neighbour still on a quick list is left alone: it merges when its own turn comes.
        """
        prev = block.prev
        if prev is not None and prev.free and not prev.quick:
            self._unlist(prev)
            self._absorb_next(prev)
            block = prev
        after = block.next
        if after is not None and after.free and not after.quick:
            self._unlist(after)
            self._absorb_next(block)
        self._list(block)

    def _absorb_next(self, block):
        """Merge ``block.next`` into ``block``; neither may be on a free list."""
        victim = block.next
        block.size += victim.size
        block.next = victim.next
        if victim.next is not None:
            victim.next.prev = block
        del self._blocks[victim.address]

    def _drain_pending(self):
        while self._pending:
            self._free_locked(self._pending.popleft())

    def _release_free_segments(self):
        released = 0
        s = self._stats
        for base, seg in list(self._segments.items()):
            head = self._blocks[base]
            if not (head.free and head.size == seg.size):
                continue
            self._raw.free(base, seg.size)   # first: if it raises, the bookkeeping still holds
            self._unlist(head)
            del self._blocks[base]
            del self._segments[base]
            released += seg.size
            s["reserved_bytes"] -= seg.size
            s["total_released_bytes"] += seg.size
            s["segments"] -= 1
            s["num_device_frees"] += 1
        return released

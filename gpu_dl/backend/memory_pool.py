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

Training asks for the same sizes every step, so a freed block first goes,
whole, on a quick list for the request size it served (one per size and
stream): the next request of that size takes it back in O(1), without the
merge and the split. Quick-listed blocks are free and cached for every
statistic and in ``snapshot()``. A request that no quick list serves takes
best fit over the free lists; only when nothing there fits do the quick
lists merge into the free lists (with their free neighbours) and best fit
looks again, so the device is asked for a new segment only when the fully
merged pool cannot serve. ``empty_cache()`` and the out-of-memory retry
merge them first too, so wholly free segments go back to the device as in a
pool that merges on every free.

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


assert ROUND_BYTES == 512, "CachingPool.malloc rounds with the literal 511"

# Block states: allocated to a caller; free on its pool's free list (merged with
# any free-listed neighbour); free on a quick list (whole, on no free list).
_ALLOCATED, _FREE, _QUICK = 0, 1, 2


class _Segment:
    __slots__ = ("address", "size", "small", "stream", "free_list")

    def __init__(self, address, size, small, stream, free_list):
        self.address, self.size, self.small, self.stream = address, size, small, stream
        self.free_list = free_list      # the _FreeList of (small, stream)


class _Block:
    """A run of bytes inside a segment; the blocks of a segment form a linked list in address order.

    ``state`` is ``_ALLOCATED``, ``_FREE`` or ``_QUICK``. ``served`` is the
    rounded request size the block was last split for: the key of the quick
    list it goes on when freed, in ``quick_lists``, its stream's dict of them.
    """
    __slots__ = ("address", "size", "requested", "segment", "prev", "next", "state", "served",
                 "quick_lists")

    def __init__(self, address, size, segment, quick_lists, prev=None, next=None):
        self.address, self.size, self.segment = address, size, segment
        self.prev, self.next = prev, next
        self.requested = 0
        self.state = _FREE
        self.served = size
        self.quick_lists = quick_lists


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


def _checked_nbytes(nbytes):
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"nbytes must be a non-negative int, got {nbytes!r}.")
    return int(nbytes)


class CachingPool:
    """Caches device memory in segments and hands out blocks of them; thread-safe (one lock).

    ``raw``: the raw allocator. ``device_memory_info``: optional callable giving
    the device's ``(free, total)`` bytes for out-of-memory messages. ``device``:
    how messages name the device.

    ``malloc`` and ``release_later`` are on the path of every CuPy array, so
    their common case (a quick-list hit, a free onto a quick list) is written
    out inline, with the counters as plain attributes; the rest of the
    bookkeeping lives in the helpers below them.
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
        # stream -> {served size -> quick-listed blocks, last freed last}; a stream's
        # dict lives as long as the pool (blocks point at it), its entries until a merge.
        self._quick = collections.defaultdict(dict)
        # Counters. Derived ones: total_freed_bytes = total_allocated_bytes - allocated_bytes,
        # num_frees = num_allocs - active_blocks, cache_hits = num_allocs - misses served.
        self._allocated_bytes = self._peak_allocated_bytes = self._total_allocated_bytes = 0
        self._requested_bytes = self._peak_requested_bytes = 0
        self._reserved_bytes = self._peak_reserved_bytes = 0
        self._total_reserved_bytes = self._total_released_bytes = 0
        self._active_blocks = self._peak_active_blocks = self._num_allocs = 0
        self._segment_count = self._peak_segments = self._num_device_allocs = self._num_device_frees = 0
        self._cache_misses = self._misses_served = self._num_oom_retries = self._num_ooms = 0

    # -- public API ---------------------------------------------------------

    def malloc(self, nbytes: int, stream: int = 0) -> int:
        """Address of a block of at least ``nbytes`` bytes, for work ordered on ``stream``."""
        if nbytes.__class__ is not int or nbytes < 0:
            nbytes = _checked_nbytes(nbytes)
        size = (nbytes + 511) & -512 or 512        # round_size(nbytes), inline
        lock = self._lock
        lock.acquire()
        try:
            if self._pending:
                self._drain_pending()
            blocks = self._quick[stream].get(size)
            if blocks:
                block = blocks.pop()
                block.state = _ALLOCATED
            else:
                block = self._malloc_uncached(size, stream, nbytes)
            block.requested = nbytes
            size = block.size
            n = self._allocated_bytes + size
            self._allocated_bytes = n
            if n > self._peak_allocated_bytes:
                self._peak_allocated_bytes = n
            self._total_allocated_bytes += size
            n = self._requested_bytes + nbytes
            self._requested_bytes = n
            if n > self._peak_requested_bytes:
                self._peak_requested_bytes = n
            n = self._active_blocks + 1
            self._active_blocks = n
            if n > self._peak_active_blocks:
                self._peak_active_blocks = n
            self._num_allocs += 1
            return block.address
        finally:
            lock.release()

    def free(self, address: int) -> None:
        """Return the block at ``address`` to the cache."""
        lock = self._lock
        lock.acquire()
        try:
            if self._pending:
                self._drain_pending()
            self._free_locked(address)
        finally:
            lock.release()

    def release_later(self, address: int) -> None:
        """Free from a finaliser: never waits for the lock, so it is safe while the lock is held.

        Garbage collection can run a finaliser in the middle of ``malloc``, or
        another thread may hold the lock: then the address is queued and freed
        by the next call that holds the lock.
        """
        lock = self._lock
        if not lock.acquire(False):
            self._pending.append(address)
            return
        try:
            if self._pending:
                self._drain_pending()
            self._free_locked(address)
        finally:
            lock.release()

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
            allocated, active, allocs = self._allocated_bytes, self._active_blocks, self._num_allocs
            out = {
                "allocated_bytes": allocated, "peak_allocated_bytes": self._peak_allocated_bytes,
                "total_allocated_bytes": self._total_allocated_bytes,
                "total_freed_bytes": self._total_allocated_bytes - allocated,
                "requested_bytes": self._requested_bytes, "peak_requested_bytes": self._peak_requested_bytes,
                "reserved_bytes": self._reserved_bytes, "peak_reserved_bytes": self._peak_reserved_bytes,
                "total_reserved_bytes": self._total_reserved_bytes,
                "total_released_bytes": self._total_released_bytes,
                "active_blocks": active, "peak_active_blocks": self._peak_active_blocks,
                "num_allocs": allocs, "num_frees": allocs - active,
                "segments": self._segment_count, "peak_segments": self._peak_segments,
                "num_device_allocs": self._num_device_allocs, "num_device_frees": self._num_device_frees,
                "cache_hits": allocs - self._misses_served, "cache_misses": self._cache_misses,
                "num_oom_retries": self._num_oom_retries, "num_ooms": self._num_ooms,
            }
        out["cached_bytes"] = out["reserved_bytes"] - out["allocated_bytes"]
        return out

    def reset_peak_stats(self) -> None:
        """Set every peak to its current value."""
        with self._lock:
            self._drain_pending()
            self._peak_allocated_bytes = self._allocated_bytes
            self._peak_requested_bytes = self._requested_bytes
            self._peak_reserved_bytes = self._reserved_bytes
            self._peak_active_blocks = self._active_blocks
            self._peak_segments = self._segment_count

    def snapshot(self) -> list:
        """Every segment with its blocks in address order (like ``torch.cuda.memory_snapshot``).

        Quick-listed blocks are ``"free"``; they are shown as they are, whole,
        so a free block may neighbour another while one of them waits on a
        quick list (``empty_cache()`` merges them).
        """
        with self._lock:
            self._drain_pending()
            out = []
            for base in sorted(self._segments):
                seg = self._segments[base]
                blocks, block = [], self._blocks[base]
                while block is not None:
                    allocated = block.state == _ALLOCATED
                    blocks.append({"address": block.address, "size": block.size,
                                   "requested": block.requested if allocated else 0,
                                   "state": "allocated" if allocated else "free"})
                    block = block.next
                out.append({"address": base, "size": seg.size, "stream": seg.stream,
                            "pool": "small" if seg.small else "large", "blocks": blocks})
            return out

    # -- bookkeeping (caller holds the lock) -------------------------------

    def _malloc_uncached(self, size, stream, nbytes):
        """A block for a request no quick list serves.

        Best fit over the free lists; failing that, best fit again after the
        quick lists merge; failing that, a new segment.
        """
        small = size <= SMALL_REQUEST_BYTES
        block = self._take_cached(size, small, stream)
        if block is None and self._merge_quick():
            block = self._take_cached(size, small, stream)
        if block is None:
            self._cache_misses += 1
            block = self._new_segment(size, small, stream, nbytes)
            self._misses_served += 1
        self._split(block, size)
        block.served = size
        block.state = _ALLOCATED
        return block

    def _free_list(self, small, stream):
        key = (small, stream)
        free_list = self._free_lists.get(key)
        if free_list is None:
            free_list = self._free_lists[key] = _FreeList()
        return free_list

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
        segment = _Segment(address, seg_bytes, small, stream, self._free_list(small, stream))
        self._segments[address] = segment
        block = self._blocks[address] = _Block(address, seg_bytes, segment, self._quick[stream])
        self._reserved_bytes += seg_bytes
        self._total_reserved_bytes += seg_bytes
        self._segment_count += 1
        self._num_device_allocs += 1
        self._peak_reserved_bytes = max(self._peak_reserved_bytes, self._reserved_bytes)
        self._peak_segments = max(self._peak_segments, self._segment_count)
        return block

    def _raw_malloc(self, seg_bytes, nbytes):
        try:
            return self._raw.malloc(seg_bytes)
        except RawOutOfMemory:
            pass
        # Arrays that are unreachable but not yet collected still hold blocks:
        # collect them (their finalisers queue their addresses), then release.
        self._num_oom_retries += 1
        gc.collect()
        self._drain_pending()
        self._merge_quick()
        self._release_free_segments()
        try:
            return self._raw.malloc(seg_bytes)
        except RawOutOfMemory as exc:
            self._num_ooms += 1
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
        return OutOfMemoryError(nbytes, self._allocated_bytes, self._reserved_bytes - self._allocated_bytes,
                                free, total, self.device, seg_bytes)

    def _split(self, block, size):
        rest = block.size - size
        segment = block.segment
        worth_keeping = rest >= ROUND_BYTES if segment.small else rest > SMALL_REQUEST_BYTES
        if not worth_keeping:
            return
        tail = _Block(block.address + size, rest, segment, block.quick_lists, prev=block, next=block.next)
        if block.next is not None:
            block.next.prev = tail
        block.next = tail
        block.size = size
        self._blocks[tail.address] = tail
        segment.free_list.add(tail)

    def _free_locked(self, address):
        """Put an allocated block on the quick list of the size it served."""
        block = self._blocks.get(address)
        if block is None or block.state != _ALLOCATED:
            raise ValueError(f"address {address:#x} is not a live block of this pool (double free?).")
        self._allocated_bytes -= block.size
        self._requested_bytes -= block.requested
        self._active_blocks -= 1
        block.state = _QUICK
        quick_lists = block.quick_lists
        blocks = quick_lists.get(block.served)
        if blocks is None:
            quick_lists[block.served] = [block]
        else:
            blocks.append(block)

    def _merge_quick(self):
        """Move every quick-listed block to the free lists, merged with its free neighbours.

        Returns whether there was any to move.
        """
        merged = False
        for quick_lists in self._quick.values():
            if not quick_lists:
                continue
            for blocks in quick_lists.values():
                for block in blocks:
                    block.state = _FREE
                    self._coalesce(block)
                    merged = True
            quick_lists.clear()
        return merged

    def _coalesce(self, block):
        """Merge a free block with its free-listed neighbours and list the result.

        A neighbour still on a quick list is left alone: it merges when its own turn comes.
        """
        free_list = block.segment.free_list
        prev = block.prev
        if prev is not None and prev.state == _FREE:
            free_list.remove(prev)
            self._absorb_next(prev)
            block = prev
        after = block.next
        if after is not None and after.state == _FREE:
            free_list.remove(after)
            self._absorb_next(block)
        free_list.add(block)

    def _absorb_next(self, block):
        """Merge ``block.next`` into ``block``; neither may be on a free list."""
        victim = block.next
        block.size += victim.size
        block.next = victim.next
        if victim.next is not None:
            victim.next.prev = block
        del self._blocks[victim.address]

    def _drain_pending(self):
        pending = self._pending
        while pending:
            self._free_locked(pending.popleft())

    def _release_free_segments(self):
        released = 0
        for base, seg in list(self._segments.items()):
            head = self._blocks[base]
            if not (head.state == _FREE and head.size == seg.size):
                continue
            self._raw.free(base, seg.size)   # first: if it raises, the bookkeeping still holds
            seg.free_list.remove(head)
            del self._blocks[base]
            del self._segments[base]
            released += seg.size
            self._reserved_bytes -= seg.size
            self._total_released_bytes += seg.size
            self._segment_count -= 1
            self._num_device_frees += 1
        return released

"""Peak memory of a call, for the tests that bound what loading a crafted file may allocate."""
import tracemalloc


def peak_bytes(fn):
    """(what fn raised, the most memory Python and numpy held while it ran)."""
    tracemalloc.start()
    try:
        fn()
    except Exception as exc:        # noqa: BLE001 - handed back to the test
        raised = exc
    else:
        raised = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, peak

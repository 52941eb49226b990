"""Comparing psutil's .info dicts, types and all: for the drop-in's tests,
in the test process and in the scripts they run as another user."""


def same(a, b):
    """Equal, and of the same types (a float is not an int, a pmem not a
    tuple), all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def differ(a, b):
    """The keys whose values are not same(), for messages."""
    return {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if not same(a.get(k), b.get(k))}

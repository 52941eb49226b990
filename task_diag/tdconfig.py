"""td_config, the programs' one-entry configuration map: the one place it
is read and written.  The loader writes it whole at load (write()), then
changes fields (update(): the programs write to it too, pw_bad); the
backend and --status read it (read(), read_pinned())."""
import ctypes
import errno
import os

from . import libbpf
from .iterproto import CONFIG, PIN_CONFIG, PIN_DIR

_KEY = (0).to_bytes(4, 'little')


def open_pinned(pin_dir=PIN_DIR):
    """A descriptor of the pinned td_config (OSError when none)."""
    return libbpf.obj_get(os.path.join(pin_dir, PIN_CONFIG))


def read(fd):
    """td_config as a dict; OSError ENOENT when the map is empty."""
    value = bytearray(CONFIG.size)
    if not libbpf.map_lookup(fd, _KEY, (ctypes.c_char * CONFIG.size).from_buffer(value)):
        raise OSError(errno.ENOENT, 'td_config is empty')
    return dict(zip(CONFIG.names, CONFIG.struct.unpack(bytes(value))))


def read_pinned(pin_dir=PIN_DIR):
    """The td_config the last load wrote under @pin_dir, or None."""
    try:
        fd = open_pinned(pin_dir)
    except OSError:
        return None
    try:
        return read(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def write(fd, fields):
    """td_config set to @fields (a dict of every field)."""
    libbpf.map_update(fd, _KEY, CONFIG.pack(*(fields[n] for n in CONFIG.names)))


def update(fd, **fields):
    """Read-modify-write of some fields: the programs write to the map too
    (calibration, pw_bad), and only the loader (root, one at a time)
    writes these."""
    cfg = read(fd)
    cfg.update(fields)
    write(fd, cfg)

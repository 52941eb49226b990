"""The command line as a terminal user meets it."""
import os
import subprocess
import sys

from helpers import ROOT

HOSTILE = b'\x1b]0;pwn\x07\xff\xfe'         # sets the terminal's title, then no UTF-8

CHILD = r'''
import ctypes, sys
ctypes.CDLL(None).prctl(15, ctypes.c_char_p(bytes.fromhex(sys.argv[1])), 0, 0, 0)
print('ready', flush=True)
sys.stdin.read()
'''


def test_ps_prints_a_hostile_comm_as_ps_does(bpf):
    child = subprocess.Popen([sys.executable, '-c', CHILD, HOSTILE.hex()],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b'ready\n'
        with open('/proc/%d/comm' % child.pid, 'rb') as f:
            assert f.read() == HOSTILE + b'\n'
        for source in ('bpf', 'proc'):
            r = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'task-diag'), '--source',
                                source, 'ps'], capture_output=True, timeout=60)
            assert r.returncode == 0, r.stderr
            assert b'\x1b' not in r.stdout and b'\x07' not in r.stdout
            line = next(line for line in r.stdout.split(b'\n')
                        if line.split()[:1] == [str(child.pid).encode()])
            assert line.endswith(b' ?]0;pwn???'), line       # ESC, BEL, 0xff, 0xfe: '?'
            r.stdout.decode('utf-8')                          # all of it valid UTF-8
    finally:
        child.kill()
        child.wait()

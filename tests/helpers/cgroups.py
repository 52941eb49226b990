"""A test-owned subtree of the unified (v2) cgroup hierarchy.

CgroupTree() makes td-test-PID under the cgroup2 mount (mounting the
hierarchy at /run/td-test-cgroup2 when this machine has it nowhere, and
saying so), directories and processes in it, and at the end kills every
process still in it, removes every directory it made (deepest first) and
unmounts what it mounted.
"""
import errno
import os
import signal
import subprocess
import sys
import time
import warnings

from task_diag import cgroups

OWN_MOUNT = '/run/td-test-cgroup2'


def _pids(path, name='cgroup.procs'):
    try:
        with open(os.path.join(path, name)) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            return []           # cgroup.procs of a threaded cgroup: its processes are
        raise                   # its threaded domain's


class CgroupTree:
    def __init__(self):
        self.mounted = False
        self.mount = cgroups.mount_point()
        if self.mount is None:
            os.makedirs(OWN_MOUNT, exist_ok=True)
            subprocess.run(['mount', '-t', 'cgroup2', 'none', OWN_MOUNT], check=True)
            self.mounted = True
            self.mount = OWN_MOUNT
            warnings.warn('no cgroup2 mount here: mounted one at %s for the tests' % OWN_MOUNT)
        self.root = os.path.join(self.mount, 'td-test-%d' % os.getpid())
        os.mkdir(self.root)
        self.dirs = [self.root]
        self.procs = []

    def path(self, rel=''):
        return os.path.join(self.root, rel) if rel else self.root

    def mkdir(self, rel):
        path = self.path(rel)
        os.mkdir(path)
        self.dirs.append(path)
        return path

    def rmdir(self, rel):
        path = self.path(rel)
        os.rmdir(path)
        self.dirs.remove(path)

    def move(self, pid, rel='', threads=False):
        """Moves process @pid (@threads: thread @pid alone) into @rel."""
        name = 'cgroup.threads' if threads else 'cgroup.procs'
        with open(os.path.join(self.path(rel), name), 'w') as f:
            f.write(str(pid))

    def spawn(self, rel, argv, **kw):
        """A process started in @rel (it moves itself before it execs)."""
        procs = os.path.join(self.path(rel), 'cgroup.procs')

        def enter():
            with open(procs, 'w') as f:
                f.write(str(os.getpid()))
        p = subprocess.Popen(argv, preexec_fn=enter, **kw)
        self.procs.append(p)
        return p

    def listed(self, rel='', threads=False):
        """The pids (tids) the cgroup.procs (cgroup.threads) files of @rel
        and every cgroup below it list: the kernel's answer."""
        out = set()
        for top, _dirs, _files in os.walk(self.path(rel)):
            out.update(_pids(top, 'cgroup.threads' if threads else 'cgroup.procs'))
        return out

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()
        for path in sorted(self.dirs, key=len, reverse=True):
            for _ in range(500):
                pids = _pids(path)
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)        # EBUSY while the killed exit
            else:
                print('cgroup %s not removed' % path, file=sys.stderr)
        self.dirs = []
        if self.mounted:
            subprocess.run(['umount', self.mount], check=False)
            self.mounted = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

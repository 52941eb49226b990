"""Builds the BPF objects into the wheel (clang + libbpf-dev at build time only)."""
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_bpf(build_py):
    def run(self):
        subprocess.run(['make', '-C', 'task_diag/bpf'], check=True)
        super().run()


setup(cmdclass={'build_py': build_py_with_bpf})

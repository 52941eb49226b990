# task-diag: sudo make run   (load, then list the processes)
#            sudo make test  (the whole suite, BPF required)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEB_PACKAGES := clang llvm libbpf-dev bpftool libfuse2 fuse3 gcc make libcap2-bin util-linux apparmor
# what only the tests need: the Prometheus server that scrapes the exporter
TEST_DEB_PACKAGES := prometheus
export TASK_DIAG_REQUIRE_BPF ?= 1

.PHONY: setup packages test-packages bpffs venv bpf run test test-kernels bench clean
.DELETE_ON_ERROR:

setup: packages bpffs venv bpf

# Debian packages: installed only when one is missing, so setup stays cheap.
packages:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test-packages:
	@$(MAKE) -s packages DEB_PACKAGES="$(TEST_DEB_PACKAGES)"

bpffs:
	@grep -qs ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf -o mode=0700 bpf /sys/fs/bpf

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

bpf:
	$(MAKE) -s -C task_diag/bpf

run: setup
	$(VENV)/bin/task-diag-load
	$(VENV)/bin/task-diag ps

test: setup test-packages
	$(PY) -m pytest -q tests

test-kernels: setup
	$(PY) -m pytest -q -rs tests/kernels

bench: setup
	$(PY) bench/run.py

clean:
	$(MAKE) -s -C task_diag/bpf clean
	rm -rf $(VENV) build *.egg-info

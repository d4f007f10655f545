# sole_r1_ros: `make demo` runs the main job, `make test` runs the tests. Both set up first.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eo pipefail -c
ENV := . ./env.sh
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup test test-fast demo bench bench-sim bench-reward bench-rl bench-nodes lint clean help

help:
	@echo 'make demo   - set up, then a simulated robot learns a task from video progress rewards'
	@echo 'make test   - set up, then run the test suite'
	@echo 'make bench  - benchmarks (JSON + tables in bench/results/)'
	@echo 'make setup  - only the set-up (venv, ROS 2 wheels, colcon build, env.sh); idempotent'

setup:
	bash tools/setup.sh

test: setup
	$(ENV)
	cd sole_r1_ros
	# pytest exits 5 when it collected nothing: a suite that runs nothing proves nothing.
	python -m pytest -q -ra $(PYTEST_ARGS) || { rc=$$?; [ $$rc = 5 ] && echo 'pytest collected no tests' >&2; exit $$rc; }

lint: setup
	$(ENV)
	cd sole_r1_ros && python -m pytest -q test/test_flake8.py

demo: setup
	$(ENV)
	sole-r1 demo $(DEMO_ARGS)

bench: bench-sim bench-reward bench-rl bench-nodes

bench-sim: setup
	$(ENV)
	python bench/bench_sim.py

bench-reward: setup
	$(ENV)
	python bench/bench_reward.py

bench-rl: setup
	$(ENV)
	python bench/bench_rl.py

bench-nodes: setup
	$(ENV)
	python bench/bench_nodes.py

clean:
	rm -rf build install log env.sh

# sole_r1_ros: `make demo` runs the main job, `make test` runs the tests. Both set up first.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eo pipefail -c
ENV := . ./env.sh
PYTEST_ARGS ?=
DEMO_ARGS ?=
BENCH_ARGS ?=

.PHONY: setup test demo bench bench-sim bench-reward bench-rl bench-nodes bench-finetune \
	bench-serving bench-loop bench-drq lint \
	compact-model clean help

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

bench: bench-sim bench-reward bench-loop bench-drq bench-rl bench-nodes bench-finetune \
	bench-serving

bench-sim: setup
	$(ENV)
	python bench/bench_sim.py

bench-reward: setup
	$(ENV)
	python bench/bench_reward.py

bench-rl: setup
	$(ENV)
	python bench/bench_rl.py $(BENCH_ARGS)

# The whole graph against its parts called in one loop (steps/s, learning off and on; ~6 min).
bench-loop: setup
	$(ENV)
	python bench/bench_loop.py $(BENCH_ARGS)

# DrQ-v2 pixels agent on the CPU: update rate and act latency per option (about 4 minutes).
bench-drq: setup
	$(ENV)
	python bench/bench_drq.py

bench-nodes: setup
	$(ENV)
	python bench/bench_nodes.py

# A stand-in for a batching vLLM server at H100 speed; about 3 minutes on 2 cores.
bench-serving: setup
	$(ENV)
	python bench/bench_serving.py $(BENCH_ARGS)

bench-finetune: setup
	$(ENV)
	OMP_NUM_THREADS=1 python bench/bench_finetune.py --tiny

# Reproduce the shipped compact progress model (about 40 minutes on 2 CPU cores).
COMPACT_TRAIN := drawer-close-v3,reach-v3,button-press-v3,drawer-open-v3,door-open-v3,window-open-v3,handle-press-v3,pick-place-v3
COMPACT_HELD := window-close-v3,door-close-v3,button-press-topdown-v3
compact-model: setup
	$(ENV)
	sole-r1 synth --tasks $(COMPACT_TRAIN) --episodes 70 --out runs/compact_data --workers 2
	sole-r1 synth --tasks $(COMPACT_HELD) --episodes 20 --out runs/compact_data --workers 2
	sole-r1 train compact --data runs/compact_data --tasks $(COMPACT_TRAIN) --minutes 25 \
	    --out sole_r1_ros/sole_r1_ros/data/compact_progress.pt
	sole-r1 eval reward --backend compact --data runs/compact_data --tasks $(COMPACT_TRAIN) \
	    --split val --out runs/compact_eval/trained_val.json --plot runs/compact_eval/trained_val.png

clean:
	rm -rf build install log env.sh

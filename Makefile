# Lifeboat: disaster recovery for Delta Lake tables on S3.  `make help` lists the targets.

SHELL := /bin/bash
VENV ?= .venv
PY ?= $(VENV)/bin/python
CARGO ?= cargo
# cargo-lambda, zig and moto_server come from the project virtualenv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup test test-rust test-python lint fmt demo bench clean fuzz chaos

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## install what a fresh machine needs (idempotent)
	@command -v cargo-nextest >/dev/null || $(CARGO) install cargo-nextest --locked

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r tests/requirements.txt
	touch $@

test: setup test-rust test-python ## run the whole test suite (unit, integration, infra)

test-rust:
	# The Lambda binaries first: the drills run them under local runtimes.
	$(CARGO) build -p replicate -p verify -p restore
	$(CARGO) nextest run --workspace --no-fail-fast

test-python:
	@if [ -d tests/infra ]; then $(VENV)/bin/pytest tests/infra -q; fi
	$(VENV)/bin/pytest tests/local_aws -q
	$(VENV)/bin/pytest tests/py -q
	# The disaster fuzzer, short and seeded, with its regression sequences (tests/chaos).
	$(CARGO) build -p lifeboat-cli
	CHAOS_SEED=$(CHAOS_TEST_SEED) CHAOS_STEPS=$(CHAOS_TEST_STEPS) timeout 600 $(VENV)/bin/pytest tests/chaos -q -p no:cacheprovider

lint: setup lint-infra ## rustfmt, clippy -D warnings, cfn-lint
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## format the Rust code
	$(CARGO) fmt --all

clean: ## remove build output
	$(CARGO) clean
	rm -rf dist

demo: setup ## the whole story on a local AWS (moto, started and stopped): create and register in Glue, replicate, verify (the catalog entry captured), drop entry and files, restore both, read back through the catalog
	$(CARGO) build -p lifeboat-cli
	$(CARGO) run --quiet -p lifeboat-cli -- demo

-include infra/infra.mk

bench: setup ## benchmarks (never part of make test): copy, verify, sharded restore (BENCH_RESTORE_OBJECTS=1000000: the 1M-object table)
	bash bench/run.sh

FUZZ_CASES ?= 50000
fuzz: ## property-based fuzzing of every parser of outside input ($(FUZZ_CASES) cases each, bounded time)
	PROPTEST_CASES=$(FUZZ_CASES) timeout 1800 $(CARGO) nextest run -p lifeboat-core -E 'binary(fuzz)' --no-fail-fast

SEED ?= 18
STEPS ?= 200
CHAOS_TEST_SEED ?= 18
CHAOS_TEST_STEPS ?= 20
chaos: setup ## the disaster fuzzer (SEED, STEPS): writes, mishaps, lost/late events, killed restores against a model
	# LIFEBOAT_BIN=path runs a binary copied aside (a long run while others rebuild the tree): no build.
	@if [ -z "$$LIFEBOAT_BIN" ]; then $(CARGO) build -p lifeboat-cli; else echo "chaos: $$LIFEBOAT_BIN"; fi
	CHAOS_SEED=$(SEED) CHAOS_STEPS=$(STEPS) timeout $$(( 1200 + $(STEPS) * 4 )) $(VENV)/bin/pytest tests/chaos/test_chaos.py -q -s -p no:cacheprovider

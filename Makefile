# The two commands: `make run` serves the console, `make test` runs the whole suite.
# Both set everything up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test demo venv system-deps lint bench bench-e2e bench-detection bench-load mutation migrate image clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

system-deps:
	bash scripts/install-system-deps.sh

run: venv
	bash scripts/run.sh

demo: venv
	DJANGO_SETTINGS_MODULE=config.settings.local $(PY) manage.py migrate --noinput
	DJANGO_SETTINGS_MODULE=config.settings.local $(PY) manage.py load_demo_data

test: system-deps venv
	bash scripts/run-tests.sh

lint: venv
	$(PY) -m ruff check .

bench: system-deps venv
	bash scripts/run-benchmarks.sh

# The end-to-end benchmark (docs/benchmarks.md, "End to end"): gunicorn, durable PostgreSQL, Redis
# and wrk, the platform against a minimal app. Not part of make test or make bench. Options:
# make bench-e2e ARGS="--quick".
bench-e2e: venv
	bash scripts/install-system-deps.sh bench-e2e
	$(PY) bench/e2e_bench.py $(ARGS)

# Detection under sustained API reads (docs/benchmarks.md, "Detection under sustained reads"): the
# queue's backlog over time and the time to detection, batched and one by one. Not part of make
# test or make bench. Options: make bench-detection ARGS="--duration 600 --modes batched".
bench-detection: venv
	bash scripts/install-system-deps.sh bench-e2e
	$(PY) bench/detection_backlog_bench.py $(ARGS)

# The load test (docs/benchmarks.md, "Load"): 200 simulated people for 10 minutes through gunicorn,
# PostgreSQL, Redis and a Celery worker, then the audit, chain and alert checks. Not part of make
# test. Options: make bench-load ARGS="--quick" (20 people, 1 minute).
bench-load: venv
	bash scripts/install-system-deps.sh bench-e2e
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	$(PY) bench/load_bench.py $(ARGS)

# Mutation testing of the security-critical modules (docs/mutation.md): cosmic-ray over each module
# listed in mutation.toml with the tests that cover it, the score per module printed at the end.
# Not part of make test (minutes per module). One module: make mutation ARGS="api/signing.py".
mutation: venv
	nice -n 19 $(PY) scripts/mutation.py $(ARGS)

migrate: venv
	$(PY) manage.py migrate --noinput

# The container image (deploy/Containerfile; docs/operations.md, "Container image"): podman, runc
# and mmdebstrap are installed only for this target and for make test.
image: venv
	bash scripts/install-system-deps.sh image
	PYTHON=$(PY) bash scripts/build-image.sh

clean:
	rm -rf $(VENV) .venv-security .pytest_cache .ruff_cache

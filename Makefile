# Quick start: `make run` launches the app on the bundled demo, `make test` runs the whole suite.
# Both create .venv with pip on first use and are idempotent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.segstudio-installed

.PHONY: run test bench package package-test clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/segstudio $(ARGS)

test: $(STAMP)
	QT_QPA_PLATFORM=$${QT_QPA_PLATFORM:-offscreen} $(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	for b in bench/*_bench.py; do QT_QPA_PLATFORM=offscreen $(PY) $$b || exit 1; done

# Bundle: packaging/build.sh (PACKAGE_ARGS="--cpu-only --archive" ...), see packaging/README.md.
package: $(STAMP)
	PY=$(PY) nice -n 10 packaging/build.sh $(PACKAGE_ARGS)

# Builds the bundle, then tests it (SEGSTUDIO_REUSE_BUNDLE=1 tests the one already in dist/).
package-test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -s tests/packaging --run-package $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)

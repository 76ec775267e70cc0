# wheelvet: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO   := build/demo

.PHONY: venv demo test test-fast conformance fuzz bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Build the example wheel (a C extension linking a library of its own, built
# outside any system path), audit it, and write the reports.
demo: $(STAMP)
	PYTHON=$(PY) bash examples/build_example.sh $(DEMO)
	@echo
	@echo "== wheelvet show (the library is found through LD_LIBRARY_PATH) =="
	LD_LIBRARY_PATH=$(CURDIR)/$(DEMO)/lib $(PY) -m wheelvet show $(DEMO)/dist/*.whl
	LD_LIBRARY_PATH=$(CURDIR)/$(DEMO)/lib $(PY) -m wheelvet show --json $(DEMO)/dist/*.whl > $(DEMO)/report.json
	@echo "JSON report: $(DEMO)/report.json"
	@echo
	@echo "== wheelvet check (exit 1 expected: the wheel needs repair) =="
	-LD_LIBRARY_PATH=$(CURDIR)/$(DEMO)/lib $(PY) -m wheelvet check --plat manylinux_2_17_x86_64 $(DEMO)/dist/*.whl
	@echo
	@echo "== wheelvet repair =="
	rm -rf $(DEMO)/wheelhouse
	LD_LIBRARY_PATH=$(CURDIR)/$(DEMO)/lib $(PY) -m wheelvet repair -w $(DEMO)/wheelhouse $(DEMO)/dist/*.whl
	$(PY) -m wheelvet check $(DEMO)/wheelhouse/*.whl
	@echo
	@echo "== the pull-request comment the GitHub Action would post =="
	rm -rf $(DEMO)/action
	env GITHUB_WORKSPACE=$(CURDIR) INPUT_WHEELS='$(DEMO)/dist/*.whl' INPUT_LD-LIBRARY-PATH=$(DEMO)/lib \
	    INPUT_WHEEL-DIR=$(DEMO)/action INPUT_UPLOAD=false INPUT_COMMENT=never \
	    $(PY) -m wheelvet action > $(DEMO)/action.log
	@echo "Markdown comment: $(DEMO)/action/wheelvet-report.md (JSON: $(DEMO)/action/wheelvet-report.json)"
	$(PY) examples/comment_html.py $(DEMO)/action/wheelvet-report.md $(DEMO)/action/wheelvet-report.html

# All tests: unit, integration (gcc-built wheels), conformance against
# auditwheel on real PyPI wheels (downloaded once, cached), bounded fuzzing.
test: $(STAMP)
	$(PY) -m pytest -q

# Everything but the PyPI conformance suite.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not conformance"

conformance: $(STAMP)
	$(PY) -m pytest -q -m conformance

# A longer fuzzing run than the bounded one in `make test`.
fuzz: $(STAMP)
	WHEELVET_FUZZ_EXAMPLES=$${WHEELVET_FUZZ_EXAMPLES:-30000} WHEELVET_FUZZ_WHEELS=$${WHEELVET_FUZZ_WHEELS:-20000} \
	  $(PY) -m pytest -q tests/unit/test_fuzz_elf.py tests/unit/test_fuzz_wheel.py --hypothesis-show-statistics

bench: $(STAMP)
	$(PY) benchmarks/bench_show.py

clean:
	rm -rf build $(VENV) .pytest_cache .hypothesis

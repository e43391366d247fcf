# Two entry points on a fresh machine (Python >= 3.11 on PATH as python3):
#   make demo   create .venv, install GridShift, run the bundled demo (writes ./gridshift-demo/)
#   make test   create .venv, install GridShift with test extras, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench clean

# everything: the core, every optional extra (service, postgres, forecast, ray, openadr) and the test tools,
# at the versions in constraints.txt
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,test]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/gridshift demo --out gridshift-demo

# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
test: $(VENV)/.installed
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_sim_year.py --json benchmarks/results/sim_year.json
	$(PY) benchmarks/bench_demo.py --json benchmarks/results/demo.json
	$(PY) benchmarks/bench_plan_epoch.py --quarter
	$(PY) benchmarks/bench_planner_scenarios.py

clean:
	rm -rf $(VENV) gridshift-demo .pytest_cache

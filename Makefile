# Two entry points on a fresh machine (Python >= 3.11 on PATH as python3):
#   make demo   create .venv, install GridShift, run the bundled demo (writes ./gridshift-demo/)
#   make test   create .venv, install GridShift with every extra and the test tools, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bench check clean

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

# Every benchmark, each with its defaults, each writing benchmarks/results/<name>.json (bench_<name>.py).
# Takes hours on a 2-core machine (about 2.5 h when idle). The long ones: bench_planner_scenarios (~85 min:
# the nightly scenarios a year month by month, then ml-training, multi-site, power-capped), bench_gavel
# (~40 min: Gavel's experiments at full size, 3 seeds), bench_hetero_moves (~6 min), bench_api (~5 min: 60 s
# per backend, needs PostgreSQL's server binaries), bench_plan_epoch --quarter (~4 min), bench_forecast
# (~3 min: 16 zone-years), bench_forecast_decisions (~20 min over 2022–2023), bench_nightly_habit (~10 min a
# zone-quarter); the others take seconds to a minute or two (bench_demo ~1 min).
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_sim_year.py
	$(PY) benchmarks/bench_sim_year.py --policy threshold --json benchmarks/results/sim_year_threshold.json
	$(PY) benchmarks/bench_demo.py
	$(PY) benchmarks/bench_dr.py
	$(PY) benchmarks/bench_dr_scenarios.py
	$(PY) benchmarks/bench_plan_epoch.py --quarter
	$(PY) benchmarks/bench_planner_scenarios.py
	$(PY) benchmarks/bench_forecast.py
	$(PY) benchmarks/bench_forecast_decisions.py --years 2023 --json benchmarks/results/forecast_decisions.json
	$(PY) benchmarks/bench_forecast_decisions.py
	$(PY) benchmarks/bench_forecast_predict.py
	for z in de gb; do for p in q1 q2; do $(PY) benchmarks/bench_nightly_habit.py --part measure --zone $$z --period $$p || exit 1; done; done
	$(PY) benchmarks/bench_headroom.py
	$(PY) benchmarks/bench_sweep.py
	$(PY) benchmarks/bench_hetero_solve.py
	$(PY) benchmarks/bench_hetero_moves.py
	$(PY) benchmarks/bench_gavel.py
	$(PY) benchmarks/bench_api.py

# The shape checks alone (make test runs them too, in tests/test_architecture.py): the layer contract,
# no package loop or file-level import cycle, the linter.
check: $(VENV)/.installed
	$(VENV)/bin/lint-imports
	$(PY) scripts/import_graph.py
	$(VENV)/bin/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) gridshift-demo .pytest_cache

"""`gridshift capacity`: the arithmetic against hand-computed cases (with units), inverse versus forward,
the tornado's directions, the packaged assumptions against the measured data, and the command end to end."""

import json
import math

import pytest
from typer.testing import CliRunner

from gridshift.catalog import load_catalog
from gridshift.cli import app
from gridshift.studies import capacity as cap
from worldkit import external_refs

runner = CliRunner()


def toy(**kw) -> cap.AcceleratorProfile:
    """800 W board + 200 W host = 1,000 W all-in; 1,000 tokens/s; 1 PFLOP/s BF16; 20,000 USD."""
    base = {"name": "Toy", "tokens_per_s": 1000.0, "inference_power_w": 600.0, "training_power_w": 800.0,
            "board_power_w": 800.0, "idle_power_w": 100.0, "host_power_w": 200.0, "peak_bf16_flop_per_s": 1e15,
            "price_usd": 20_000.0, "hbm_gb": 80.0, "weights_gb": 140.0}
    return cap.AcceleratorProfile(**{**base, **kw})


def params(**kw) -> cap.Params:
    base = {"utilisation_frac": 0.5, "pue": 1.25, "peak_to_mean": 2.0, "mfu_frac": 0.4, "carbon_g_per_kwh": 400.0,
            "energy_price_usd_per_mwh": 50.0, "amortisation_years": 5.0, "server_capex_frac": 0.5}
    return cap.Params(**{**base, **kw})


# ------------------------------------------------------------------------------------ hand-computed cases


def test_one_gigawatt_facility_at_pue_1_25_and_1000_w_all_in_is_800000_accelerators():
    p = toy()
    assert p.provisioned_w == 1000.0  # W = 800 W board + 200 W host
    b = cap.capacity_for_budget(p, 1000.0, params())  # 1,000 MW = 1 GW, metered
    assert b.accelerators == 800_000  # 1e9 W / (1.25 x 1,000 W)
    assert b.it_mw == pytest.approx(800.0)  # 800,000 x 1,000 W = 800 MW
    assert b.facility_mw == pytest.approx(1000.0)  # 800 MW x 1.25
    # 1,000 tokens/s x 0.5 utilisation x 86,400 s/day / 2 (peak-to-mean) = 21.6e6 tokens/day per accelerator
    assert b.tokens_per_day == pytest.approx(800_000 * 21.6e6)  # 1.728e13
    # 1e15 FLOP/s x 0.4 MFU x 0.5 utilisation x 2,628,000 s (730 h) = 5.256e20 FLOP/month per accelerator
    assert b.training_flop_per_month == pytest.approx(800_000 * 5.256e20)
    # an IT budget of 1 GW holds 1e9 / 1,000 W accelerators and meters 1.25 GW
    it = cap.capacity_for_budget(p, 1000.0, params(), basis="it")
    assert it.accelerators == 1_000_000 and it.facility_mw == pytest.approx(1250.0)


def test_budget_rounds_down_to_whole_accelerators():
    # 1 MW / (1.25 x 1,000 W) = 800 exactly; 0.9999 MW holds only 799
    assert cap.accelerators_for_budget(toy(), 1.0, params()) == 800
    assert cap.accelerators_for_budget(toy(), 0.9999, params()) == 799
    assert cap.accelerators_for_budget(toy(), 0.0, params()) == 0


def test_forward_sizing_hand_computed():
    p, pr = toy(), params()
    s = cap.size_for_demand(p, cap.Demand(tokens_per_day=2.16e9), pr)  # = 100 accelerators x 21.6e6 tokens/day
    assert (s.inference_accelerators, s.training_accelerators, s.accelerators) == (100, 0, 100)
    assert s.it_mw == pytest.approx(0.1)  # 100 x 1,000 W provisioned
    assert s.facility_mw == pytest.approx(0.125)  # x PUE 1.25
    # mean load = 2.16e9 / 86,400 s = 25,000 tokens/s of a 100,000 tokens/s fleet = 0.25
    # average W per accelerator = 100 idle + (600 - 100) x 0.25 + 200 host = 425 W
    assert s.avg_facility_mw == pytest.approx(100 * 425.0 * 1.25 / 1e6)  # 0.053125 MW
    assert s.annual_mwh == pytest.approx(0.053125 * 8760)  # 465.375 MWh
    assert s.carbon_t_per_yr == pytest.approx(465.375 * 400 / 1000)  # MWh x g/kWh / 1000 = 186.15 t
    assert s.capex_usd_per_yr == pytest.approx(100 * 20_000 * 1.5 / 5)  # 600,000 USD/yr
    assert s.energy_usd_per_yr == pytest.approx(465.375 * 50)  # 23,268.75 USD/yr
    assert s.cost_usd_per_yr == pytest.approx(600_000 + 23_268.75)
    # cost per million tokens: 623,268.75 USD / (2.16e9 x 365 / 1e6) = 0.7905...
    assert s.usd_per_million_tokens == pytest.approx(623_268.75 / 788_400)
    assert s.min_accelerators_per_replica == 2  # 140 GB of weights over 80 GB of HBM


def test_forward_rounds_up_and_training_hand_computed():
    p, pr = toy(), params()
    assert cap.size_for_demand(p, cap.Demand(tokens_per_day=2.16e9 + 1), pr).accelerators == 101
    # 5.256e22 FLOP/month / 5.256e20 per accelerator = 100
    s = cap.size_for_demand(p, cap.Demand(training_flop_per_month=5.256e22), pr)
    assert (s.inference_accelerators, s.training_accelerators) == (0, 100)
    # the demand fills exactly 100 accelerators at u = 0.5, so they run at 0.5 of their maximum on average
    # average W = 100 + (800 - 100) x 0.5 + 200 = 650 W
    assert s.annual_mwh == pytest.approx(100 * 650.0 * 1.25 / 1e6 * 8760)
    assert s.usd_per_million_tokens is None


def test_energy_is_facility_mw_times_8760_at_full_load():
    # flat demand (peak-to-mean 1) at utilisation 1, drawing board power: average = provisioned
    p = toy(inference_power_w=800.0)
    pr = params(utilisation_frac=1.0, peak_to_mean=1.0)
    s = cap.size_for_demand(p, cap.Demand(tokens_per_day=1000.0 * 86_400 * 50), pr)  # 50 accelerators
    assert s.accelerators == 50
    assert s.avg_facility_mw == pytest.approx(s.facility_mw)
    assert s.annual_mwh == pytest.approx(s.facility_mw * 8760)  # MWh/yr = MW x 8,760 h


def test_mix_splits_demand_and_adds_up():
    profiles = {"A": toy(name="A"), "B": toy(name="B", tokens_per_s=2000.0, peak_bf16_flop_per_s=2e15)}
    demand = cap.Demand(tokens_per_day=2.16e9, training_flop_per_month=5.256e22)
    pr = params()
    resolve = {"a": "A", "b": "B"}.__getitem__
    roles = cap.parse_mix("inference=A,training=B", lambda n: resolve(n.lower()))
    r = cap.size_mix(roles, profiles, demand, pr)
    a, b = r.parts
    assert (a.accelerator, a.inference_accelerators, a.training_accelerators) == ("A", 100, 0)
    assert (b.accelerator, b.inference_accelerators, b.training_accelerators) == ("B", 0, 50)  # twice the FLOP/s
    assert r.total.accelerators == 150
    assert r.total.cost_usd_per_yr == pytest.approx(a.cost_usd_per_yr + b.cost_usd_per_yr)
    assert r.total.facility_mw == pytest.approx(a.facility_mw + b.facility_mw)
    split = cap.parse_mix("A:3,B:1", lambda n: resolve(n.lower()))
    assert [(p.accelerator, p.inference_share, p.training_share) for p in split.parts] == [
        ("A", 0.75, 0.75), ("B", 0.25, 0.25)]
    r2 = cap.size_mix(split, profiles, demand, pr)
    assert [p.inference_accelerators for p in r2.parts] == [75, 13]  # 75; ceil(25 / 2)
    with pytest.raises(cap.CapacityError, match="training"):
        cap.size_mix(cap.parse_mix("inference=A", lambda n: resolve(n.lower())), profiles, demand, pr)


@pytest.mark.parametrize("spec", ["", "inference=", "gpu=A", "A:-1", "A:x", "A,inference=B",
                                  "inference=A,inference=B"])
def test_bad_mixes(spec):
    with pytest.raises(cap.CapacityError):
        cap.parse_mix(spec, lambda n: {"a": "A", "b": "B"}[n.lower()])


@pytest.mark.parametrize("field,value", [("utilisation_frac", 0.0), ("utilisation_frac", 1.2), ("pue", 0.9),
                                         ("peak_to_mean", 0.5), ("mfu_frac", -0.1), ("carbon_g_per_kwh", -1.0),
                                         ("amortisation_years", 0.0), ("pue", float("nan"))])
def test_bad_params(field, value):
    with pytest.raises(cap.CapacityError, match=field):
        cap.size_for_demand(toy(), cap.Demand(tokens_per_day=1e9), params(**{field: value}))


def test_negative_demand_and_budget_are_rejected():
    with pytest.raises(cap.CapacityError, match="tokens_per_day"):
        cap.size_for_demand(toy(), cap.Demand(tokens_per_day=-1.0), params())
    with pytest.raises(cap.CapacityError, match="budget_mw"):
        cap.capacity_for_budget(toy(), -5.0, params())
    with pytest.raises(cap.CapacityError, match="zero"):
        cap.Demand().check()


# ------------------------------------------------------------------------------------ demand shape


def test_trace_shape_even_arrivals_and_weekly_factor():
    t = [float(i) for i in range(3600)]  # one request per second for an hour
    s = cap.trace_shape("even", t, [10] * 3600, [100] * 3600, window_s=300.0, diurnal_amplitude_frac=0.35,
                        weekend_factor=0.8)
    assert s.burst_peak_to_mean == pytest.approx(1.0)
    assert s.mean_generated_tokens == 10 and s.mean_context_tokens == 100
    assert s.weekly_peak_to_mean == pytest.approx(1.35 * 7 / 6.6)  # (1 + A) x 7 / (5 + 2 w)
    assert s.peak_to_mean == pytest.approx(1.35 * 7 / 6.6)


def test_trace_shape_burst_is_busiest_window_over_mean():
    # two 60-s windows: 30 tokens then 10 tokens -> mean 20, peak 30
    s = cap.trace_shape("two", [0.0, 10.0, 70.0, 120.0], [10, 20, 10, 0], [0, 0, 0, 0], window_s=60.0,
                        diurnal_amplitude_frac=0.0, weekend_factor=1.0)
    assert s.burst_peak_to_mean == pytest.approx(1.5)
    assert s.peak_to_mean == pytest.approx(1.5)


# ------------------------------------------------------------------------------------ real profiles


@pytest.fixture(scope="module")
def real():
    a = cap.load_assumptions()
    catalog = load_catalog()
    ref = catalog[a.reference_accelerator]
    return a, catalog, {n: cap.build_profile(catalog[n], ref, a, "llama-70b") for n in catalog}


def test_every_assumption_has_a_source_and_every_catalog_type_a_price(real):
    a, catalog, _ = real
    assert all(x.source.strip() for x in a.defaults.values())
    assert set(catalog) <= set(a.prices)
    assert all(p.source.strip() for p in a.prices.values())
    assert a.default("pue") == 1.56 and a.default("zone") == "US-MIDA-PJM"


def test_measured_blocks_match_the_mlenergy_data(real):
    from gridshift.data import load_mlenergy

    a, _, _ = real
    frame = load_mlenergy()
    for mc in a.model_classes.values():
        for gpu, point in mc.measured.items():
            assert cap.best_serving_point(frame, mc.mlenergy_model, a.mlenergy_task, gpu, a.itl_slo_ms) == point


def test_profiles_measured_versus_scaled(real):
    _a, _catalog, prof = real
    h = prof["H100"]
    assert (h.tokens_per_s, h.inference_power_w, h.throughput_estimated) == (1228.8, 588.6, False)
    assert h.provisioned_w == 960.0  # 700 W board + 260 W host (MLPerf Training v4.0)
    assert h.peak_bf16_flop_per_s == pytest.approx(989.4e12)
    t = prof["Trainium2"]
    assert t.throughput_estimated
    assert t.tokens_per_s == pytest.approx(1228.8 * 2.9 / 3.35)  # scaled by HBM bandwidth
    assert t.inference_power_w == pytest.approx(500 * 588.6 / 700)  # H100's draw fraction of board power
    assert not prof["B200"].throughput_estimated and prof["B200"].tokens_per_s == 2686.2


def test_inverse_of_forward_gives_back_the_fleet(real):
    _, _, prof = real
    pr = params(pue=1.3, utilisation_frac=0.7, peak_to_mean=1.6)
    for name in ("H100", "B200", "Trainium2", "Ascend-910B"):
        p = prof[name]
        for d in (cap.Demand(tokens_per_day=3.3e12), cap.Demand(training_flop_per_month=7e25)):
            s = cap.size_for_demand(p, d, pr)
            b = cap.capacity_for_budget(p, s.facility_mw, pr)
            assert b.accelerators == s.accelerators
            assert b.tokens_per_day >= d.tokens_per_day and b.training_flop_per_month >= d.training_flop_per_month
        # and a budget's output, sized forward, needs the same fleet
        b = cap.capacity_for_budget(p, 250.0, pr)
        assert cap.size_for_demand(p, cap.Demand(tokens_per_day=b.tokens_per_day), pr).accelerators == b.accelerators
        assert cap.size_for_demand(p, cap.Demand(training_flop_per_month=b.training_flop_per_month),
                                   pr).accelerators == b.accelerators


# ------------------------------------------------------------------------------------ tornado


def _bars(bars, output):
    return {b.input: b for b in bars if b.output == output}


def test_tornado_directions_for_a_demand():
    p = {"Toy": toy()}
    d = cap.Demand(tokens_per_day=2.16e11, training_flop_per_month=5.256e24)
    bars = cap.tornado(cap.demand_evaluator("Toy", d), p, params(), 0.2)
    acc, mw, cost, co2 = (_bars(bars, o) for o in cap.DEMAND_OUTPUTS)
    # more utilisation, throughput or MFU -> fewer accelerators; peakier demand -> more
    for k in ("utilisation_frac", "tokens_per_s", "mfu_frac"):
        assert acc[k].high < acc[k].base < acc[k].low
    assert acc["peak_to_mean"].low < acc["peak_to_mean"].base < acc["peak_to_mean"].high
    # PUE, power, carbon intensity, prices and lifetime do not change the fleet
    assert not {"pue", "power_w", "carbon_g_per_kwh", "energy_price_usd_per_mwh", "price_usd",
                "amortisation_years"} & set(acc)
    # PUE and power per accelerator scale facility MW proportionally
    for k in ("pue", "power_w"):
        assert mw[k].low == pytest.approx(0.8 * mw[k].base) and mw[k].high == pytest.approx(1.2 * mw[k].base)
    # carbon intensity moves carbon only, proportionally; price moves cost only
    assert co2["carbon_g_per_kwh"].high == pytest.approx(1.2 * co2["carbon_g_per_kwh"].base)
    assert "carbon_g_per_kwh" not in cost and "energy_price_usd_per_mwh" not in co2
    assert cost["energy_price_usd_per_mwh"].low < cost["energy_price_usd_per_mwh"].base < \
        cost["energy_price_usd_per_mwh"].high
    assert cost["price_usd"].low < cost["price_usd"].base < cost["price_usd"].high
    assert cost["amortisation_years"].high < cost["amortisation_years"].base < cost["amortisation_years"].low
    # bars of each output are ordered by swing
    swings = [b.swing for b in bars if b.output == "cost_usd_per_yr"]
    assert swings == sorted(swings, reverse=True)


def test_tornado_clips_bounded_inputs():
    bars = cap.tornado(cap.budget_evaluator("Toy", 100.0), {"Toy": toy()}, params(utilisation_frac=1.0, pue=1.1),
                       0.2)
    tok = _bars(bars, "tokens_per_day")
    assert tok["utilisation_frac"].high_factor == 1.0  # 1.0 x 1.2 clipped to 1
    assert tok["utilisation_frac"].high == tok["utilisation_frac"].base
    acc = _bars(bars, "accelerators")
    assert acc["pue"].low_factor == pytest.approx(1.0 / 1.1)  # 1.1 x 0.8 clipped to PUE 1
    assert acc["pue"].low > acc["pue"].base > acc["pue"].high
    assert tok["tokens_per_s"].high > tok["tokens_per_s"].base


# ------------------------------------------------------------------------------------ command


def _ok(*args):
    res = runner.invoke(app, ["capacity", *args])
    assert res.exit_code == 0, res.output + res.stderr
    return res


def _bad(*args) -> str:
    res = runner.invoke(app, ["capacity", *args])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_budget_json_shape_and_numbers():
    res = _ok("--budget-gw", "1", "--pue", "1.25", "-a", "H100,B200,Trainium2,Ascend910B", "--json")
    doc = json.loads(res.stdout)
    assert doc["mode"] == "budget"
    assert list(doc["results"]) == ["H100", "B200", "Trainium2", "Ascend-910B"]
    for r in doc["results"].values():
        assert {"accelerators", "it_mw", "facility_mw", "tokens_per_day", "training_flop_per_month"} <= set(r)
        assert isinstance(r["accelerators"], int) and r["accelerators"] > 0
        assert r["facility_mw"] <= 1000.0 and r["facility_mw"] == pytest.approx(r["it_mw"] * 1.25)
    h = doc["results"]["H100"]
    assert h["accelerators"] == math.floor(1e9 / (1.25 * 960))  # 833,333 at 960 W all-in
    assert h["training_flop_per_month"] == pytest.approx(833_333 * 989.4e12 * 0.40 * 0.7 * 2_628_000)
    assert h["tokens_per_day"] == pytest.approx(833_333 * 1228.8 * 0.7 * 86_400 / doc["inputs"]["peak_to_mean"])
    assert doc["results"]["Trainium2"]["throughput_estimated"] is True
    keys = {a["key"] for a in doc["assumptions"]}
    assert {"pue", "mfu_frac", "carbon_g_per_kwh", "H100.tokens_per_s", "Trainium2.price_usd"} <= keys
    assert all(a["source"] for a in doc["assumptions"])
    assert doc["tornado"]["bars"]


def test_cli_demand_with_mix_writes_csv_html_png(tmp_path):
    out = tmp_path / "cap"
    res = _ok("--tokens-per-day", "1e12", "--training-flop-per-month", "1e25", "-a", "H100,B200",
              "--mix", "inference=B200,training=Trainium2", "--zone", "GB", "--energy-price-usd-per-mwh", "80",
              "--out", str(out))
    assert "Assumptions" in res.stdout and "Uptime Institute" in res.stdout
    import pandas as pd

    csv = pd.read_csv(out / "capacity.csv")
    assert list(csv["accelerator"]) == ["H100", "B200", "B200", "Trainium2", "total"]
    total = csv.iloc[-1]
    assert total["accelerators"] == csv.iloc[2]["accelerators"] + csv.iloc[3]["accelerators"]
    assert (csv["annual_mwh"] > 0).all()
    page = (out / "capacity.html").read_text()
    assert external_refs(page) == []  # self-contained: plotly.js and the PNG are inlined
    assert "data:image/png;base64," in page and "Uptime Institute" in page
    assert (out / "tornado.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "capacity.json").read_text())
    assert doc["inputs"]["energy_price_usd_per_mwh"] == 80.0
    assert list(doc["mixes"]) == ["inference=B200,training=Trainium2"]


def test_cli_requests_per_day_uses_the_trace_tokens_per_request():
    a = json.loads(_ok("--requests-per-day", "1e9", "-a", "H100", "--json").stdout)
    per_req = next(x["value"] for x in a["assumptions"] if x["key"] == "generated_tokens_per_request")
    assert 150 < per_req < 300  # conversation trace: about 211 generated tokens per request
    assert a["inputs"]["tokens_per_day"] == pytest.approx(1e9 * per_req, rel=1e-3)
    assert a["results"]["H100"]["inference_accelerators"] > 0


@pytest.mark.parametrize("args,needle", [
    (["--tokens-per-day", "-5"], "tokens-per-day"),
    (["--tokens-per-day", "1e9", "-a", "H9000"], "unknown accelerator"),
    (["--tokens-per-day", "1e9", "--zone", "XX"], "unknown zone"),
    (["--budget-mw", "10", "--budget-gw", "1"], "not both"),
    (["--budget-mw", "10", "--tokens-per-day", "1e9"], "give one"),
    ([], "nothing to size"),
    (["--tokens-per-day", "1e9", "--zone", "GB"], "no electricity price"),
    (["--tokens-per-day", "1e9", "--utilisation", "1.5"], "utilisation"),
    (["--tokens-per-day", "1e9", "--pue", "0.8"], "pue"),
    (["--tokens-per-day", "1e9", "--model-class", "gpt-9"], "unknown model class"),
    (["--tokens-per-day", "1e9", "--mix", "inference=H100:-1"], "positive"),
    (["--budget-gw", "1", "--mix", "H100:1"], "mix"),
    (["--budget-gw", "0"], "budget-gw"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, needle):
    out = tmp_path / "o"
    line = _bad(*args, "--out", str(out))
    assert needle in line
    assert not out.exists()

"""Unit tests of the benchmark driver's parsing and verdicts (run.py).

The targets of issue 7 live in the report that run.py writes, so what decides
PASS or MISS is tested here: each target at its boundary, the medians over
rounds, and the parsing of real load-generator output (testdata/ holds oha's
JSON from a login run against safebox, 200s and 503s, and from a read run).
No server or load generator runs; `make test` runs these with the standard
library's unittest.
"""

from __future__ import annotations

import copy
import json
import tempfile
import unittest
from pathlib import Path

import run

TESTDATA = Path(__file__).resolve().parent / "testdata"
CORES = 2
MIB_KIB = 1024


def result(name: str, duration_s: float = 10.0, statuses: dict | None = None, *,
           p50_ms: float | None = 1.0, p99_ms: float | None = 2.0, **fields) -> run.LoadResult:
    return run.LoadResult(
        name=name, connections=fields.pop("connections", 64), duration_s=duration_s,
        statuses=statuses if statuses is not None else {"200": 1000},
        errors=fields.pop("errors", {}), deadline_aborts=0, p50_ms=p50_ms, p99_ms=p99_ms,
        **fields)


def storm_login(shed_p99_ms: float | None = 35.0, per_status: bool = True,
                sheds: int = 20_000) -> run.LoadResult:
    return result("storm-login", statuses={"200": 18, "503": sheds}, p50_ms=30.0, p99_ms=900.0,
                  ok_p50_ms=2100.0, ok_p99_ms=2500.0, not_ok_p50_ms=30.0,
                  not_ok_p99_ms=shed_p99_ms, per_status_latency=per_status)


def login_round(index: int, logins_per_s: float, bound: float = 8.5,
                hashing_share: float = 0.95) -> run.LoadResult:
    duration = 20.0
    return result(f"login-{index}", duration, {"200": round(logins_per_s * duration), "503": 38_000},
                  ok_p50_ms=780.0, ok_p99_ms=870.0, not_ok_p50_ms=30.0, not_ok_p99_ms=35.0,
                  per_status_latency=True, drained=True,
                  hashing_cpu_s=hashing_share * duration * CORES,
                  extra={"bound_logins_per_s": bound})


def bench_data(**changes) -> dict:
    """What run.bench() returns for a run that meets every target, with
    `changes` replacing any of its result objects or figures."""
    objs = {
        "base_runs": [result(f"baseline-{i}", statuses={"200": 1_400_000}, p99_ms=2.5)
                      for i in range(3)],
        "read_runs": [result(f"reads-{i}", statuses={"200": 900_000}, p99_ms=3.0)
                      for i in range(3)],
        "vault_runs": [result(f"vault-reads-{i}", statuses={"200": 880_000}, p99_ms=3.1)
                       for i in range(3)],
        "writes": result("writes", statuses={"200": 40_000}),
        "vault_writes": result("vault-writes", statuses={"201": 39_000}),
        "login_runs": [login_round(i, 8.0) for i in range(3)],
        "login_bounds": [8.5, 8.5, 8.5],
        "storm_login": storm_login(),
        "storm_reads": result("storm-reads", connections=8, p99_ms=1.4),
        "strict_login": storm_login(),
        "strict_reads": result("defaults-storm-reads", connections=8, p99_ms=1.0),
    }
    figures = {"peak_kib": 39 * MIB_KIB, "dropped": 0, "refused": 0}
    for key, value in changes.items():
        if key in objs:
            objs[key] = value
        else:
            assert key in figures, key
            figures[key] = value
    snapshot = {"vm_hwm_kib": figures["peak_kib"], "vm_rss_kib": 30 * MIB_KIB, "threads": 14,
                "cpu_s": 1.0}
    return {
        "machine": {"cores": CORES, "cpu_model": "test CPU", "memory_gib": 1.0, "kernel": "test",
                    "rustc": "rustc test", "load_average_at_start": "0 0 0",
                    "git_commit": "0000000", "date_utc": "2026-12-06 00:00 UTC",
                    "load_generator": "oha test"},
        "settings": {"connections": 64, "duration_s": 10.0, "login_duration_s": 20.0,
                     "warmup_s": 2.0, "rounds": 3, "login_rounds": len(objs["login_runs"]),
                     "users": 8, "storm_reader_connections": 8, "bcrypt_cost": 12,
                     "safebox_env": {}, "main_instance_env": {"SAFEBOX_IP_RATE_PER_MINUTE": "0"},
                     "defaults": True, "secret_bytes": 16},
        "bcrypt": {"cost": 12, "runs": 7, "mean_of_probes_s": 0.235, "at_start_s": 0.235,
                   "around_logins_s": [0.235] * (len(objs["login_runs"]) + 1),
                   "bound_logins_per_s": CORES / 0.235},
        "runs": {
            "login": [r.to_json() for r in objs["login_runs"]],
            "storm_login": objs["storm_login"].to_json(),
            "defaults_storm_login": objs["strict_login"].to_json(),
        },
        "server": {"idle": dict(snapshot), "after_reads": dict(snapshot),
                   "after_writes": dict(snapshot), "after_login": dict(snapshot),
                   "after_storm": dict(snapshot), "healthy_after": True,
                   "audit": {"dropped": figures["dropped"], "refused": figures["refused"]}},
        "defaults_server": {"after_storm": dict(snapshot)},
        "baseline_server": dict(snapshot, vm_hwm_kib=5 * MIB_KIB),
        "_objects": objs,
    }


def verdicts(data: dict) -> dict[str, str]:
    """Scenario-name prefix (the row's number or first word) → PASS/MISS."""
    return {name.split(" ")[0].rstrip(".:"): outcome
            for name, outcome in run.analyse(data)["summary"]["results"].items()}


def row(data: dict, prefix: str) -> dict:
    return next(r for r in data["rows"] if r["scenario"].startswith(prefix))


class Verdicts(unittest.TestCase):
    def test_a_run_meeting_every_target_passes_every_row(self):
        outcomes = verdicts(bench_data())
        self.assertEqual(set(outcomes.values()), {"PASS"}, outcomes)
        self.assertEqual(sorted(outcomes),
                         ["1", "1v", "2", "2v", "3", "4a", "4b", "5a", "5b", "Audit", "Memory"])

    def test_reads_need_half_the_baselines_requests_a_second(self):
        at_target = [result(f"reads-{i}", statuses={"200": 700_000}) for i in range(3)]
        below = [result(f"reads-{i}", statuses={"200": 699_999}) for i in range(3)]
        self.assertEqual(verdicts(bench_data(read_runs=at_target))["1"], "PASS")
        self.assertEqual(verdicts(bench_data(read_runs=below))["1"], "MISS")

    def test_reads_p99_may_be_twice_the_baselines_and_no_more(self):
        at_target = [result(f"v-{i}", statuses={"200": 880_000}, p99_ms=5.0) for i in range(3)]
        above = [result(f"v-{i}", statuses={"200": 880_000}, p99_ms=5.0075) for i in range(3)]
        self.assertEqual(verdicts(bench_data(vault_runs=at_target))["1v"], "PASS")
        data = run.analyse(bench_data(vault_runs=above))
        self.assertEqual(data["summary"]["results"][row(data, "1v.")["scenario"]], "MISS")
        # 2.003x is not printed as 2.00x next to a MISS.
        self.assertIn("p99 2.003× baseline", row(data, "1v.")["ratio"])

    def test_read_figures_are_medians_over_the_rounds(self):
        # One slow round and one fast round do not move the median round.
        reads = [result("reads-1", statuses={"200": 100_000}, p99_ms=40.0),
                 result("reads-2", statuses={"200": 900_000}, p99_ms=3.0),
                 result("reads-3", statuses={"200": 990_000}, p99_ms=2.0)]
        data = run.analyse(bench_data(read_runs=reads))
        self.assertEqual(data["summary"]["reads_rps"], 90_000)
        self.assertEqual(data["summary"]["reads_p99_ms"], 3.0)
        self.assertEqual(data["summary"]["results"][row(data, "1.")["scenario"]], "PASS")

    def test_writes_need_two_thousand_a_second(self):
        self.assertEqual(verdicts(bench_data(writes=result("w", statuses={"200": 20_000})))["2"],
                         "PASS")
        self.assertEqual(verdicts(bench_data(writes=result("w", statuses={"200": 19_999})))["2"],
                         "MISS")
        # Only 2xx answers count.
        failing = result("w", statuses={"200": 10_000, "503": 30_000})
        self.assertEqual(verdicts(bench_data(vault_writes=failing))["2v"], "MISS")

    def test_the_login_ratio_is_the_median_of_the_rounds_each_against_its_own_bound(self):
        # 7.65/8.5 = 0.9, 7.2/8.0 = 0.9 and 8.0/8.0 = 1.0: the median round is at the target.
        rounds = [login_round(1, 7.65), login_round(2, 7.2), login_round(3, 8.0)]
        data = run.analyse(bench_data(login_runs=rounds, login_bounds=[8.5, 8.0, 8.0]))
        self.assertAlmostEqual(data["summary"]["login_ratio"], 0.9)
        self.assertEqual(data["summary"]["results"][row(data, "3.")["scenario"]], "PASS")

        # One round far below and one above do not move the verdict either way.
        rounds = [login_round(1, 5.0), login_round(2, 7.6), login_round(3, 8.4)]
        data = run.analyse(bench_data(login_runs=rounds, login_bounds=[8.5, 8.5, 8.5]))
        self.assertAlmostEqual(data["summary"]["login_ratio"], 7.6 / 8.5)
        self.assertEqual(data["summary"]["results"][row(data, "3.")["scenario"]], "MISS")
        login_row = row(data, "3.")
        self.assertIn("rounds 0.59, 0.89, 0.99", login_row["ratio"])
        # The row's rate is the median round's, not the first's or the best's.
        self.assertAlmostEqual(login_row["rps"], 7.6)

    def test_of_an_even_number_of_rounds_the_lower_middle_one_decides(self):
        rounds = [login_round(1, 8.075), login_round(2, 7.31)]
        data = run.analyse(bench_data(login_runs=rounds, login_bounds=[8.5, 8.5]))
        login_row = row(data, "3.")
        # 0.86 and 0.95: not their mean (0.905), which no round reached.
        self.assertAlmostEqual(data["summary"]["login_ratio"], 7.3 / 8.5)
        self.assertEqual(login_row["result"], "MISS")
        self.assertAlmostEqual(login_row["rps"], 7.3)

    def test_the_row_shows_every_round_and_all_of_them_pooled(self):
        rounds = [login_round(1, 6.8), login_round(2, 7.75), login_round(3, 7.75)]
        data = run.analyse(bench_data(login_runs=rounds, login_bounds=[8.5, 8.5, 8.5]))
        # 0.80, 0.91, 0.91: the median passes, and the pooled 0.8745 is shown beside it.
        self.assertEqual(row(data, "3.")["result"], "PASS")
        self.assertIn("rounds 0.80, 0.91, 0.91 (all rounds pooled 0.87×)", row(data, "3.")["ratio"])
        self.assertAlmostEqual(data["summary"]["login_pooled_ratio"], 22.3 / 25.5)

    def test_one_round_is_its_own_ratio(self):
        data = run.analyse(bench_data(login_runs=[login_round(1, 7.65)], login_bounds=[8.5]))
        self.assertEqual(row(data, "3.")["result"], "PASS")
        self.assertNotIn("rounds", row(data, "3.")["ratio"])
        self.assertNotIn("median", run.login_note(data))

    def test_a_round_with_no_duration_is_a_miss_not_a_crash(self):
        rounds = [login_round(1, 8.0), login_round(2, 8.0), result("login-3", 0.0, {})]
        rounds[1].duration_s = 0.0
        data = run.analyse(bench_data(login_runs=rounds, login_bounds=[8.5, 8.5, 8.5]))
        self.assertEqual(row(data, "3.")["result"], "MISS")

    def test_the_login_note_splits_the_median_round(self):
        rounds = [login_round(1, 8.0, hashing_share=0.99), login_round(2, 7.8, hashing_share=0.93),
                  login_round(3, 6.0, hashing_share=0.80)]
        data = run.analyse(bench_data(login_runs=rounds, login_bounds=[8.5, 8.5, 8.5]))
        self.assertAlmostEqual(data["summary"]["login_hashing_share"], 0.93)
        note = run.login_note(data)
        self.assertIn("had 0.930 of the cores", note)
        # 0.93 x 2 cores x 20 s over 156 logins; one verify is 2 cores / 8.5 a second.
        self.assertIn(f"spent {0.93 * 2 * 20 * 1000 / 156:.0f} ms", note)
        self.assertIn(f"against {2 / 8.5 * 1000:.0f} ms", note)

    def test_no_successful_login_is_a_miss_not_a_crash(self):
        rounds = [result(f"login-{i}", 20.0, {"503": 40_000}) for i in range(3)]
        data = run.analyse(bench_data(login_runs=rounds))
        self.assertEqual(data["summary"]["results"][row(data, "3.")["scenario"]], "MISS")
        self.assertIn("none succeeded", run.login_note(data))

    def test_sheds_must_be_answered_in_under_fifty_ms(self):
        self.assertEqual(verdicts(bench_data(storm_login=storm_login(49.9)))["4a"], "PASS")
        self.assertEqual(verdicts(bench_data(storm_login=storm_login(50.0)))["4a"], "MISS")
        self.assertEqual(verdicts(bench_data(strict_login=storm_login(81.1)))["5a"], "MISS")

    def test_a_shed_verdict_needs_latency_by_status_and_something_shed(self):
        data = run.analyse(bench_data(storm_login=storm_login(per_status=False)))
        self.assertEqual(row(data, "4a.")["result"], "n/a (no per-status latency)")
        self.assertNotIn(row(data, "4a.")["scenario"], data["summary"]["results"])
        data = run.analyse(bench_data(storm_login=storm_login(sheds=0)))
        self.assertEqual(row(data, "4a.")["result"], "n/a (nothing shed)")

    def test_reads_during_a_storm_keep_p99_within_ten_ms(self):
        at_target = result("storm-reads", connections=8, p99_ms=10.0)
        above = result("storm-reads", connections=8, p99_ms=10.01)
        self.assertEqual(verdicts(bench_data(storm_reads=at_target))["4b"], "PASS")
        self.assertEqual(verdicts(bench_data(storm_reads=above))["4b"], "MISS")
        self.assertEqual(verdicts(bench_data(strict_reads=result("r", p99_ms=None)))["5b"], "MISS")

    def test_peak_rss_may_reach_sixty_four_mib(self):
        self.assertEqual(verdicts(bench_data(peak_kib=64 * MIB_KIB))["Memory"], "PASS")
        self.assertEqual(verdicts(bench_data(peak_kib=64 * MIB_KIB + 1))["Memory"], "MISS")
        self.assertEqual(verdicts(bench_data(peak_kib=None))["Memory"], "MISS")

    def test_one_dropped_or_refused_audit_event_is_a_miss(self):
        self.assertEqual(verdicts(bench_data(dropped=1))["Audit"], "MISS")
        self.assertEqual(verdicts(bench_data(refused=1))["Audit"], "MISS")


def timings(answered, within_50ms, ok, shed_503, shed_429=None) -> dict:
    return {"answered": answered, "within_50ms": within_50ms, "ok": ok,
            "shed_503": shed_503, "shed_429": shed_429}


class ServerShedTimings(unittest.TestCase):
    BEFORE = timings(300, 10, 290, 10)

    def test_late_sheds_are_the_answers_past_fifty_ms_that_were_not_logins(self):
        # 20,000 sheds (10 of them late), 18 logins and 5 quick 401s.
        after = timings(300 + 20_023, 10 + 19_995, 290 + 18, 10 + 19_000, 1_000)
        self.assertEqual(run.server_shed_timings(self.BEFORE, after),
                         {"sheds": 20_000, "late": 10})

    def test_none_late(self):
        # 700 sheds, all within 50 ms; 300 logins, all over.
        after = timings(1300, 710, 590, 710)
        self.assertEqual(run.server_shed_timings(self.BEFORE, after), {"sheds": 700, "late": 0})

    def test_a_server_with_no_login_before_the_storm(self):
        before = timings(None, None, None, None)
        after = timings(120, 100, 20, 100)
        self.assertEqual(run.server_shed_timings(before, after), {"sheds": 100, "late": 0})

    def test_series_missing_after_the_storm_are_not_read_as_none_late(self):
        self.assertIsNone(run.server_shed_timings(self.BEFORE, timings(1300, None, 590, 710)))
        self.assertIsNone(run.server_shed_timings(self.BEFORE, timings(None, 710, 590, 710)))

    def test_the_report_notes_them_beside_the_load_generators_verdict(self):
        data = bench_data(storm_login=storm_login(81.1))
        data["runs"]["storm_login"]["server_sheds"] = {"sheds": 20_000, "late": 10}
        data["runs"]["defaults_storm_login"]["server_sheds"] = {"sheds": 0, "late": 0}
        report = run.markdown(run.analyse(data))
        self.assertIn("over 50 ms: 4a 10 of 20,000 (0.05%); 5a 0 of 0.", report)
        data = bench_data()
        data["runs"]["storm_login"]["server_sheds"] = None
        data["runs"]["defaults_storm_login"]["server_sheds"] = {"sheds": 20_500, "late": 0}
        self.assertIn("over 50 ms: 5a 0 of 20,500 (0.00%).", run.markdown(run.analyse(data)))
        self.assertIn("**MISS**", report)
        self.assertIn("Storm sheds timed inside safebox: not measured.",
                      run.markdown(run.analyse(bench_data())))


class Formatting(unittest.TestCase):
    def test_a_ratio_missing_its_target_is_never_printed_as_the_target(self):
        self.assertEqual(run.fmt_ratio(0.93, 0.9), "0.93")
        self.assertEqual(run.fmt_ratio(0.9, 0.9), "0.90")
        self.assertEqual(run.fmt_ratio(0.897, 0.9), "0.897")
        self.assertEqual(run.fmt_ratio(0.8996, 0.9), "0.8996")
        self.assertEqual(run.fmt_ratio(2.003, 2.0), "2.003")
        self.assertEqual(run.fmt_ratio(0.49996, 0.5), "0.49996")
        self.assertEqual(run.fmt_ratio(0.4999999, 0.5), "0.4999999")

    def test_the_report_marks_each_miss_and_says_how_logins_were_counted(self):
        data = run.analyse(bench_data(storm_login=storm_login(81.1)))
        report = run.markdown(data)
        self.assertEqual(report.count("**MISS**"), 1)
        self.assertIn("| 4a. Storm (per-IP limit off): logins (latency of shed answers) |", report)
        self.assertIn("wait for the logins still in flight", report)
        self.assertIn("20 s for each of 3 login rounds", report)

        cut_off = bench_data()
        for entry in cut_off["runs"]["login"]:
            entry["drained"] = False
        self.assertIn("cut off by the deadline and not counted", run.markdown(run.analyse(cut_off)))

    def test_the_analysed_report_is_plain_json(self):
        # analyse() hands its working objects back: nothing but JSON values is
        # left for report.json (dumped without a fallback for other types).
        data = run.analyse(bench_data())
        self.assertNotIn("_objects", data)
        self.assertEqual(json.loads(json.dumps(data))["summary"]["results"],
                         data["summary"]["results"])


class Parsing(unittest.TestCase):
    def test_oha_login_run_with_sheds(self):
        load = run.Load("login", 1, "/login", 16, 2.0, method="POST")
        parsed = run.Oha.parse(load, TESTDATA / "oha-login.json")
        self.assertEqual(parsed.statuses, {"200": 16, "503": 660})
        self.assertEqual(parsed.ok, 16)
        # Requests cut off by the deadline are counted apart, not as errors.
        self.assertEqual(parsed.deadline_aborts, 16)
        self.assertEqual(parsed.errors, {})
        self.assertAlmostEqual(parsed.duration_s, 2.001148018)
        self.assertTrue(parsed.per_status_latency)
        self.assertAlmostEqual(parsed.ok_p50_ms, 713.842192)
        self.assertAlmostEqual(parsed.not_ok_p99_ms, 34.346739)
        self.assertAlmostEqual(parsed.extra["max_ms"], 732.978985)

    def test_oha_read_run_with_nothing_unsuccessful(self):
        load = run.Load("reads", 1, "/get_secret", 4, 1.0)
        parsed = run.Oha.parse(load, TESTDATA / "oha-reads.json")
        self.assertEqual(parsed.statuses, {"200": 81364})
        self.assertAlmostEqual(parsed.p99_ms, 0.114657)
        self.assertAlmostEqual(parsed.ok_rps, 81364 / 1.0023733)
        self.assertIsNone(parsed.not_ok_p99_ms)

    def test_oha_transport_errors_are_kept(self):
        raw = json.loads((TESTDATA / "oha-login.json").read_text())
        raw["errorDistribution"] = {"aborted due to deadline": 3, "connection closed": 5}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "oha.json"
            path.write_text(json.dumps(raw))
            parsed = run.Oha.parse(run.Load("x", 1, "/", 1, 1.0), path)
        self.assertEqual(parsed.errors, {"connection closed": 5})
        self.assertEqual(parsed.deadline_aborts, 3)
        self.assertIn("connection closed: 5", run.fmt_statuses(run.merge_statuses([parsed])))

    def test_wrk_result_line(self):
        line = ('BENCH_JSON {"requests":1200,"duration_us":10000000,"p50_us":800,"p99_us":4100,'
                '"errors":{"connect":0,"read":2,"write":0,"timeout":0},'
                '"statuses":{"200":1000,"503":200}}')
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "wrk.txt"
            path.write_text("Running 10s test @ http://127.0.0.1:1/\n" + line + "\n")
            parsed = run.Wrk.parse(run.Load("x", 1, "/", 64, 10.0), path)
            self.assertEqual(parsed.statuses, {"200": 1000, "503": 200})
            self.assertEqual(parsed.errors, {"socket read": 2})
            self.assertEqual(parsed.duration_s, 10.0)
            self.assertEqual((parsed.p50_ms, parsed.p99_ms), (0.8, 4.1))
            self.assertFalse(parsed.per_status_latency)
            path.write_text("wrk: connection refused\n")
            with self.assertRaises(run.BenchError):
                run.Wrk.parse(run.Load("x", 1, "/", 64, 10.0), path)

    def test_the_servers_login_timings_from_its_metrics(self):
        text = (TESTDATA / "metrics-login.txt").read_text()
        self.assertEqual(run.parse_login_timings(text),
                         {"answered": 690, "within_50ms": 670, "ok": 20, "shed_503": 670,
                          "shed_429": None})
        # The 50 ms bucket, not its neighbours, and only the login route's.
        series = 'method="POST",route="/login"'
        text = "\n".join([
            f'safebox_http_request_duration_seconds_bucket{{{series},le="0.025"}} 2',
            f'safebox_http_request_duration_seconds_bucket{{{series},le="0.05"}} 5',
            f'safebox_http_request_duration_seconds_bucket{{{series},le="0.1"}} 9',
            'safebox_http_request_duration_seconds_bucket{method="POST",route="/register",le="0.05"} 7',
            f"safebox_http_request_duration_seconds_count{{{series}}} 12",
            f'safebox_http_requests_total{{{series},status="200"}} 3',
            f'safebox_http_requests_total{{{series},status="401"}} 1',
            f'safebox_http_requests_total{{{series},status="429"}} 6',
            f'safebox_http_requests_total{{{series},status="503"}} 2',
        ])
        self.assertEqual(run.parse_login_timings(text),
                         {"answered": 12, "within_50ms": 5, "ok": 3, "shed_503": 2, "shed_429": 6})
        # A server that has answered no login yet has none of the series.
        self.assertEqual(set(run.parse_login_timings("safebox_up 1\n").values()), {None})

    def test_medians_skip_missing_figures(self):
        runs = [result("a", p99_ms=None), result("b", p99_ms=3.0), result("c", p99_ms=1.0)]
        self.assertEqual(run.median_of(runs, "p99_ms"), 2.0)
        self.assertIsNone(run.median_of([result("a", p99_ms=None)], "p99_ms"))


if __name__ == "__main__":
    unittest.main()

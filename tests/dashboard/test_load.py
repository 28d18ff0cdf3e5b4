"""The dashboard under load: 16 concurrent websocket sessions, each a different rollout.

The slow test starts ``streamlit run dashboard/app.py`` (repository root, shipped checkpoints,
127.0.0.1 on a free port, headless) through :func:`bench.dashboard_load.load_server`, opens
the default page once, records the server's idle ``VmRSS``, then opens 16 deep links at the same
time (``bench.dashboard_load.plans``: radar_synthetic / moving_mnist / traffic_sumo with their
shipped checkpoints, one sample each, the Gates / Pixel probe / Metrics views), and the same 16 once
more. Every session must finish with no exception element, no error or warning alert, the
rollout it asked for (its link echoed in the page's query string) and its view's plotly charts;
the server's resident memory must stay under idle + 2.5 GB during the load and be under idle +
the retained cache budgets + 300 MB a few seconds after each round. The measured numbers are
printed (``pytest -s``). Every wait is bounded; the server is stopped in any case.

The fast tests check the client's reading of Streamlit's messages on hand-made ForwardMsgs.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import dashboard_load as load
from bench.streamlit_client import PageCollector, PageRun, rerun_request, stream_url
from dashboard.budget import BUDGETS

SESSIONS = 16
PAGE_TIMEOUT = 120.0


# -- the client on hand-made messages (fast) -------------------------------------------------------
def _delta_msg(**element) -> ForwardMsg:
    msg = ForwardMsg()
    (kind, fill) = next(iter(element.items()))
    fill(getattr(msg.delta.new_element, kind))
    msg.delta.new_element.SetInParent()
    return msg


def _finished(status=ForwardMsg.FINISHED_SUCCESSFULLY) -> ForwardMsg:
    msg = ForwardMsg()
    msg.script_finished = status
    return msg


def _chart(kind: str):
    def fill(chart):
        chart.spec = json.dumps({"data": [], "layout": {"meta": {"kind": kind}}})

    return fill


def _alert(fmt, body: str):
    def fill(alert):
        alert.format, alert.body = fmt, body

    return fill


def _exception(exc):
    exc.type, exc.message = "ValueError", "boom"


def test_collector_counts_charts_and_flags_errors_and_exceptions():
    run = PageRun(query="q")
    collector = PageCollector(run)
    for msg in (
        _delta_msg(plotly_chart=_chart("forecast")),
        _delta_msg(plotly_chart=_chart("gates")),
        _delta_msg(alert=_alert(Alert.WARNING, "careful")),
        _finished(ForwardMsg.FINISHED_EARLY_FOR_RERUN),  # a rerun follows: not the end
    ):
        assert not collector.feed(msg)
    assert run.ok is False and run.status == "not_started" and run.reruns == 1
    assert collector.feed(_finished())
    assert run.ok and run.status == "finished"
    assert run.plotly_charts == 2 and run.chart_kinds == ["forecast", "gates"]
    assert run.warnings == ["careful"] and not run.errors

    bad = PageRun(query="q")
    collector = PageCollector(bad)
    collector.feed(_delta_msg(alert=_alert(Alert.ERROR, "Something went wrong")))
    collector.feed(_delta_msg(exception=_exception))
    collector.feed(_finished())
    assert bad.status == "finished" and not bad.ok
    assert bad.errors == ["Something went wrong"] and bad.exceptions == ["ValueError: boom"]
    problems = load.check_run(bad)
    assert any("error alert" in p for p in problems)
    assert any("exception element" in p for p in problems)
    assert any("no plotly chart" in p for p in problems)


def test_collector_resolves_references_and_counts_lost_ones():
    run = PageRun(query="")
    collector = PageCollector(run)
    chart = _delta_msg(plotly_chart=_chart("forecast"))
    chart.hash, chart.metadata.cacheable = "abc", True
    collector.feed(chart)
    ref = ForwardMsg()
    ref.ref_hash = "abc"
    collector.feed(ref)
    lost = ForwardMsg()
    lost.ref_hash = "never-sent"
    collector.feed(lost)
    collector.feed(_finished(ForwardMsg.FINISHED_WITH_COMPILE_ERROR))
    assert run.plotly_charts == 2 and run.unresolved_refs == 1
    assert run.status == "compile_error" and not run.ok


def test_check_run_wants_the_linked_rollout_and_the_views_charts():
    plan = load.Plan("moving_mnist", "video_moving_mnist", 3, "Metrics")
    run = PageRun(query=plan.query, status="finished", plotly_charts=2)
    run.chart_kinds = ["forecast", "metrics"]
    run.final_query = plan.query + "&step=10&context=10&horizon=10"
    assert load.check_run(run, plan) == []
    run.final_query = run.final_query.replace("sample=3", "sample=0")  # link rejected
    run.chart_kinds = ["forecast"]
    problems = load.check_run(run, plan)
    assert any("sample='0'" in p for p in problems)
    assert any("metrics" in p for p in problems)


def test_rerun_request_and_url_are_what_the_frontend_sends_on_loopback_only():
    msg = BackMsg()
    msg.ParseFromString(rerun_request("dataset=moving_mnist&sample=2"))
    assert msg.WhichOneof("type") == "rerun_script"
    assert msg.rerun_script.query_string == "dataset=moving_mnist&sample=2"
    assert msg.rerun_script.page_script_hash == "" and not msg.rerun_script.cached_message_hashes
    assert stream_url(8501) == "ws://127.0.0.1:8501/_stcore/stream"
    for host in ("0.0.0.0", "localhost", "example.com"):
        with pytest.raises(ValueError, match="only connects"):
            stream_url(8501, host)


def test_plans_are_distinct_rollouts_on_bundled_data_with_shipped_checkpoints():
    from datasets.registry import dataset_info

    todo = load.plans(SESSIONS)
    assert len({(p.dataset, p.checkpoint, p.sample, p.horizon) for p in todo}) == SESSIONS
    assert {p.view for p in todo} == set(load.VIEW_CHARTS)
    for p in todo:
        assert dataset_info(p.dataset)["bundled"], p.dataset
        assert (load.CHECKPOINTS / p.checkpoint / "model.safetensors").is_file(), p.checkpoint
        assert 1 <= p.sample < load.N_SAMPLES  # sample 0 of the default pair: the warm-up
    many = load.plans(40)  # past the samples: shorter horizons keep them distinct
    assert len({p.query for p in many}) == 40
    with pytest.raises(ValueError):
        load.plans(0)


# -- the load (slow) -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_sixteen_concurrent_sessions_finish_cleanly_and_memory_stays_bounded(tmp_path):
    log = tmp_path / "streamlit.log"
    with load.load_server(log, start_timeout=120) as server:
        report = asyncio.run(
            load.run_load(server, SESSIONS, rounds=2, timeout=PAGE_TIMEOUT, settle_s=10.0)
        )
        print("\n" + report.summary())
        tail = server.log_tail()
    assert len(report.rounds) == 2
    assert all(len(r.runs) == SESSIONS for r in report.rounds)
    for rnd in report.rounds:
        for plan, run in zip(report.plans, rnd.runs, strict=True):
            assert run.status == "finished", (run.query, run.status, run.error, tail)
            assert not run.exceptions, (run.query, run.exceptions, tail)
            assert not run.errors, (run.query, run.errors, tail)
            assert run.plotly_charts >= 1, run.query
            assert set(plan.charts) <= set(run.chart_kinds), (run.query, run.chart_kinds)
    retained = sum(BUDGETS[k] for k in load.RETAINED_CACHES)
    assert report.after_bound == report.idle_rss + retained + 300 * 10**6
    assert report.peak_bound == report.idle_rss + 2500 * 10**6
    assert report.idle_rss > 0 and report.peak_rss >= report.idle_rss
    assert report.peak_rss <= report.peak_bound, report.summary()
    for rnd in report.rounds:
        assert 0 < rnd.after_rss <= report.after_bound, report.summary()
    assert report.problems == [], report.summary() + "\n" + tail

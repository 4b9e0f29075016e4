"""deploy/monitoring: the Prometheus configuration, the alert rules (with promtool's own unit
tests) and the Grafana dashboard name only metrics the workers export or the rules record."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pipeline import config
from pipeline.monitoring.lag import PartitionLag
from pipeline.monitoring.metrics import ConsumerView, WorkerMetrics
from pipeline.records import iso, utc_now
from pipeline.stages.base import StageStats
from tests.conftest import CONFIG, ROLES, ROOT

MONITORING = ROOT / "deploy" / "monitoring"
PROMQL_FUNCTIONS = {"sum", "rate", "increase", "deriv", "histogram_quantile", "clamp_min", "topk", "count",
                    "sort_desc", "vector", "by", "on", "group_left", "and", "or"}


class OneLag:
    def group_lag(self, group, topic, partitions, seen_end):
        return [PartitionLag(topic, p, 1, 2, seen_end.get(p)) for p in partitions]


def declared(stage):
    from pipeline.stages import stage_factory

    return stage_factory(stage, config.load(CONFIG, env={})).record_metrics


def exported_names() -> set[str]:
    """Every sample name a worker of any stage exports, once it has seen a record."""
    names = {"up"}
    record = {"id": "r", "ingested_at": iso(utc_now()), "lang": {"code": "id"}, "dedup": {"status": "unique"},
              "entities": [{"label": "PER"}], "entity_summary": [{"canonical": "X", "label": "PER", "count": 1}]}
    for stage in ROLES:
        stats = StageStats(records_in=1, records_out=1)
        stats.failed["timeout"] = 1
        metrics = WorkerMetrics(stage, "w", lambda stats=stats: stats,
                                record_metrics=() if stage == "sink" else declared(stage))
        metrics.observe_records([{**record, "trace": [{"stage": stage, "ms": 1.0}]}])
        metrics.view = ConsumerView("t", "g", frozenset({0}), {0: 2}, {0: 2}, {("u", 0): 3})
        metrics.probe = OneLag()
        if stage == "sink":
            metrics.observe_written([record], 0.01)
        for family in text_string_to_metric_families(metrics.exposition().decode()):
            names.update(sample.name for sample in family.samples)
    return names


def recorded_names() -> set[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\((?:[a-z_]+\s*,\s*)*[a-z_]+\)", lambda m: "" if re.search(r"(by|on|group_left)\s*$",
                  expr[:m.start()]) else m.group(0), expr)  # by (...), on (...) label lists
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_FUNCTIONS and not re.fullmatch(r"e\d*", w)}


def test_the_grafana_dashboard_and_the_rules_use_only_metrics_that_exist():
    known = exported_names() | recorded_names()
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    titles = [p["title"] for p in dashboard["panels"]]
    for wanted in ("Throughput", "Lag", "End-to-end latency", "Language mix", "Top entities", "Stages",
                   "Dead letters", "Newest records"):
        assert any(t.startswith(wanted) for t in titles), (wanted, titles)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    assert len(exprs) > 25
    for expr in exprs:
        unknown = metric_names(expr) - known
        assert not unknown, (expr, unknown)
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {"NewsPipelineWorkerDown", "NewsPipelineLagGrowing", "NewsPipelineDeadLetterRate",
            "NewsPipelineEndToEndSlow"} <= alerts


def test_metric_names_are_read_out_of_promql():
    assert metric_names('sum by (stage, le) (rate(news_pipeline_x_bucket{stage="a"}[5m])) > 1e-9') == \
        {"news_pipeline_x_bucket"}
    assert metric_names("a * on (instance) group_left (stage) b") == {"a", "b"}


@pytest.fixture
def promtool():
    binary = shutil.which("promtool")
    if not binary:
        pytest.skip("no promtool: install the Debian package prometheus (scripts/bootstrap does as root)")
    return binary


def test_promtool_accepts_the_config_and_the_rules_and_their_unit_tests_pass(promtool):
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                 ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run([promtool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert "SUCCESS" in result.stdout + result.stderr

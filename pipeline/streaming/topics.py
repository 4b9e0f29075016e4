"""The topics of the chain (``pipeline/registry.py`` says which stage reads and writes which),
and their idempotent creation.

Every topic is created with its configured partition count before any worker starts: the
embedded broker would otherwise create a touched topic itself, with 4 partitions.
"""

from __future__ import annotations

import time

from pipeline import registry
from pipeline.config import Settings


def planned_topics(settings: Settings) -> dict[str, int]:
    # Faust's own topics: the apps disable the leader-election topic and keep no tables (so no
    # changelogs); nothing else of Faust's touches the broker.
    names = registry.topic_names(settings)
    return {name: settings.topics.partitions_of(name) for name in names}


def ensure_topics(bootstrap: str, settings: Settings, timeout_s: float = 30.0) -> dict[str, int]:
    """Create missing topics; refuse existing ones with another partition count. Returns the plan."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    plan = planned_topics(settings)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="pipeline-admin",
                             request_timeout_ms=int(timeout_s * 1000), bootstrap_timeout_ms=int(timeout_s * 1000),
                             **settings.broker.client_options())
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, parts, settings.topics.replication_factor)
                   for name, parts in plan.items() if name not in existing]
        for topic in missing:  # one by one: a concurrent creator makes only that one fail
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
        deadline = time.monotonic() + timeout_s
        while True:
            described = {d["name"]: len(d["partitions"]) for d in admin.describe_topics(list(plan))
                         if not d.get("error_code")}
            if all(name in described for name in plan) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        wrong = {n: (described.get(n), p) for n, p in plan.items() if described.get(n) != p}
        if wrong:
            detail = ", ".join(f"{n} has {have} partitions, config says {want}" for n, (have, want) in wrong.items())
            raise RuntimeError(f"topic layout differs from the configuration: {detail}")
        return plan
    finally:
        admin.close()

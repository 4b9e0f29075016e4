"""Operations: what a running pipeline is doing, for people and for Prometheus.

    metrics.py    each worker's Prometheus metrics, /healthz and /readyz (its own port)
    lag.py        consumer lag from the broker's committed and end offsets (and the embedded
                  broker's short end offsets, corrected by what the workers saw)
    scrape.py     reading a worker's /metrics back
    status.py     per-stage state and health verdicts from samples (`pipeline status`, dashboard)
    view.py       the live terminal view and `pipeline status --once --json`
    dashboard.py  the web page of `pipeline run` / `pipeline dashboard` (dashboard.html), its search,
                  record page (record.html) and dead-letter replay
    lookup.py     where a record is: the sinks, the dead-letter topic, still in flight (`pipeline record`)
    logs.py       text or JSON-lines logs with stage and record id
    window.py     counts over the last hour
    http.py       the small threaded HTTP servers behind all of it

deploy/monitoring/ holds the Prometheus scrape configuration, the alert rules and a Grafana
dashboard for the same metrics.
"""

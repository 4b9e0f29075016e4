"""PNG plots of a session: completions per second and latency over time, RSS per process over time."""

from __future__ import annotations

from pathlib import Path


def draw(session: dict, target: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = session["started"]
    paths = []
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    points = session["series"]
    ax1.plot([p["t"] for p in points], [p["events_per_s"] for p in points], color="tab:blue")
    ax1.set_ylabel("completed events/s")
    lat = [p for p in points if p["p50_ms"] is not None]
    ax2.plot([p["t"] for p in lat], [p["p50_ms"] for p in lat], label="p50")
    ax2.plot([p["t"] for p in lat], [p["p99_ms"] for p in lat], label="p99")
    ax2.set_yscale("log")
    ax2.set_ylabel("ingestion to sink, ms")
    ax2.set_xlabel("seconds since the workers were ready")
    ax2.legend()
    for ax in (ax1, ax2):
        for i, (name, (lo, hi)) in enumerate(session["phases"].items()):
            ax.axvspan(lo - start, hi - start, alpha=0.06 if i % 2 else 0.14, color="grey")
            if ax is ax1:
                ax.text(lo - start, ax.get_ylim()[1] * 0.97, name, fontsize=7, va="top")
    fig.suptitle(f"{title}: throughput and latency")
    fig.tight_layout()
    paths.append(target.with_name(target.name + "-throughput-latency.png"))
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 5))
    roles = sorted({r for s in session["samples"] for r in s["rss_mib"]})
    for role in roles:
        ax.plot([s["t"] - start for s in session["samples"]], [s["rss_mib"].get(role) for s in session["samples"]],
                label=role)
    ax.set_ylabel("RSS, MiB")
    ax.set_xlabel("seconds since the workers were ready")
    ax.legend(fontsize=7, ncol=3)
    fig.suptitle(f"{title}: resident memory per process")
    fig.tight_layout()
    paths.append(target.with_name(target.name + "-rss.png"))
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths

"""results.md and results.png of the robustness report."""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import FORMAT_ORDER

HEADLINE = (
    ("clean", "SIGNS test"),
    ("shift_mean", "shift mean"),
    ("shift_worst", "worst shift"),
    ("other_hands", "other hands"),
    ("cluttered", "cluttered bg"),
    ("empty_no_sign", "empty: no sign"),
    ("clean_shown_right", "test shown+right"),
)


def _order(names) -> list[str]:
    rank = {n: i for i, n in enumerate(FORMAT_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _thresholds(results: dict, models: list[str]) -> list[str]:
    """Each distinct "no sign" threshold as "value (where from)", with its models when several."""
    by_value: dict[str, list[str]] = {}
    for m in models:
        t = results["models"][m].get("min_confidence")
        if t is None:  # results written before per-model thresholds
            t = {"value": results["settings"]["min_confidence"], "source": "--min-confidence"}
        by_value.setdefault(f"{t['value']:g} ({t['source']})", []).append(m)
    if len(by_value) <= 1:
        return list(by_value) or ["-"]
    return [f"{k} for {', '.join(v)}" for k, v in by_value.items()]


def markdown(results: dict) -> str:
    models = _order(results["models"])
    s = results["settings"]
    limits = _thresholds(results, models)
    lines = [
        "# Robustness report",
        "",
        f"Models: `{s['models']}`; shifts and empty scenes seeded with {s['seed']}; "
        f'"no sign" below a top probability of {"; ".join(limits)}.',
        "",
        "| model | " + " | ".join(h for _, h in HEADLINE) + " |",
        "| --- |" + " ---: |" * len(HEADLINE),
    ]
    for m in models:
        sm = results["models"][m]["summary"]
        cells = [f"{sm[k]:.3f}" if k in sm else "-" for k, _ in HEADLINE]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "shift mean: the mean accuracy over every shift and severity below; cluttered bg: the "
        "test hands on held-out photo crops (background:4); shown+right: correct and above the "
        "min-confidence.",
        "",
        "## Accuracy per shift and severity",
        "",
        "| shift | severity | " + " | ".join(models) + " |",
        "| --- | --- |" + " ---: |" * len(models),
    ]
    first = results["models"][models[0]]["rows"] if models else {}
    for key in first:
        if key.startswith("empty:"):
            continue
        name, _, level = key.partition(":")
        param = ""
        if level:
            spec = results["shifts"][name]
            param = f"{level} ({spec['severities'][int(level) - 1]} {spec['unit']})"
        accs = [f"{results['models'][m]['rows'][key]['accuracy']:.3f}" for m in models]
        lines.append(f"| {name} | {param} | " + " | ".join(accs) + " |")
    lines += [
        "",
        '## "No sign" on hand-free scenes (top probability below the min-confidence)',
        "",
        "| scene | n | " + " | ".join(models) + " |",
        "| --- | ---: |" + " ---: |" * len(models),
    ]
    for key in first:
        if key.startswith("empty:"):
            cells = [f"{results['models'][m]['rows'][key]['no_sign']:.3f}" for m in models]
            n = first[key]["n"]
            lines.append(f"| {key[6:]} | {n} | " + " | ".join(cells) + " |")
    lines += ["", f"Built and scored in {results.get('seconds', '?')} s.", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Accuracy per shift (mean over severities), one line per model, plus the headline bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from runtime.fsutil import atomic_path

    models = _order(results["models"])
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(13, 5), dpi=110, gridspec_kw={"width_ratios": [3, 1.3]}
    )
    names = list(results["shifts"])
    for m in models:
        rows = results["models"][m]["rows"]
        ys = []
        for n in names:
            accs = [r["accuracy"] for k, r in rows.items() if k.split(":")[0] == n]
            ys.append(100 * sum(accs) / len(accs))
        ax.plot(names, ys, marker="o", label=m)
    ax.set_ylabel("accuracy (%), mean over severities")
    ax.set_title("SIGNS test under shifts", fontsize=10)
    ax.tick_params(axis="x", rotation=60)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    keys = [k for k, _ in HEADLINE[:6]]
    width = 0.8 / max(1, len(models))
    for i, m in enumerate(models):
        sm = results["models"][m]["summary"]
        bx.bar([j + i * width for j in range(len(keys))], [100 * sm.get(k, 0) for k in keys],
               width=width, label=m)  # fmt: skip
    bx.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
    bx.set_xticklabels([h for _, h in HEADLINE[:6]], rotation=60, fontsize=8)
    bx.set_ylim(0, 100)
    bx.grid(True, axis="y", alpha=0.3)
    bx.set_title("headline (%)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)

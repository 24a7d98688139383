"""Rate-distortion plots of a benchmark run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_STYLE = {
    "dnerv": {"color": "tab:red", "marker": "o", "linewidth": 2.2},
    "dnerv-separate": {"color": "tab:orange", "marker": "o", "linestyle": "--"},
    "nerv": {"color": "tab:brown", "marker": "v"},
    "blend": {"color": "tab:gray", "marker": "x", "linestyle": "--"},
    "plain": {"color": "tab:pink", "marker": "o", "linestyle": "-."},
    "plain-blend": {"color": "tab:pink", "marker": "x", "linestyle": ":"},
    "x264-veryslow": {"color": "tab:blue", "marker": "s"},
    "x264-medium": {"color": "tab:blue", "marker": "s", "linestyle": ":", "alpha": 0.7},
    "x265-veryslow": {"color": "tab:green", "marker": "^"},
    "x265-medium": {"color": "tab:green", "marker": "^", "linestyle": ":", "alpha": 0.7},
    "av1-preset4": {"color": "tab:purple", "marker": "D"},
}


def plot_rd(points: list[dict[str, Any]], stem: Path, title: str = "") -> dict[str, Path]:
    """PSNR-vs-bpp and MS-SSIM-vs-bpp side by side (log bpp axis), written as STEM.png and STEM.svg.
    Returns {"png": path, "svg": path}."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    curves: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        curves.setdefault(p["codec"], []).append(p)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for metric, ax, label in ((("psnr"), axes[0], "PSNR (dB, RGB)"), ("ms_ssim", axes[1], "MS-SSIM")):
        for name, pts in sorted(curves.items()):
            pts = sorted((p for p in pts if p.get(metric) is not None), key=lambda p: p["bpp"])
            if not pts:
                continue
            ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], label=name, **_STYLE.get(name, {}))
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    stem = Path(stem)
    out = {"png": stem.with_suffix(".png"), "svg": stem.with_suffix(".svg")}
    fig.savefig(out["png"], dpi=130)
    fig.savefig(out["svg"])
    plt.close(fig)
    return out

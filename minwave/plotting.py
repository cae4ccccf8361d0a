"""The PNG of a training run: training and validation loss in bits per sample against step, with the
μ-law unigram baseline as a horizontal line; below it, the periodicity of the audio generated at each
checkpoint against the validation audio's (quality.py), because lower bits do not always mean better audio.

The baseline answers "it trained and only makes noise": a model whose validation curve is not clearly
below that line has learned nothing about the past of the signal, only how often each level occurs.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # not pyplot: no GUI backend, and a notebook's inline plots stay on


def plot_losses(
    rows: list[dict], path: str | Path, unigram_bits: float | None = None, title: str | None = None
) -> Path:
    """Write the loss curves of `rows` (metrics-log records) to the PNG `path`; returns the path.

    rows: dicts with "step" and, where measured, "train_bits" and "val_bits" (None when not measured);
    checkpoint rows with "sample_periodicity" and "data_periodicity" add the second panel.
    """
    path = Path(path)
    train = [(r["step"], r["train_bits"]) for r in rows if r.get("train_bits") is not None]
    valid = [(r["step"], r["val_bits"]) for r in rows if r.get("val_bits") is not None]
    tone = [(r["step"], r["sample_periodicity"]) for r in rows if r.get("sample_periodicity") is not None]
    data_tone = [r["data_periodicity"] for r in rows if r.get("data_periodicity") is not None]
    fig = Figure(figsize=(7, 6.5 if tone else 4), dpi=100)  # drawn by the Agg canvas on savefig
    if tone:
        ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
        ax2.plot(*zip(*tone), color="tab:green", marker="o", markersize=3, label="generated samples (median)")
        if data_tone:
            ax2.axhline(
                data_tone[-1],
                color="gray",
                linestyle="--",
                linewidth=1,
                label=f"validation audio ({data_tone[-1]:.2f})",
            )
        ax2.axhspan(0, 0.2, color="tab:red", alpha=0.08, label="white noise (0.1-0.2)")
        ax2.set_ylim(0, 1.02)
        ax2.set_xlabel("step")
        ax2.set_ylabel("periodicity")
        ax2.grid(True, alpha=0.3)
        ax2.legend(loc="lower right", fontsize="small")
    else:
        ax = fig.subplots()
    if train:
        ax.plot(*zip(*train), label="train", color="tab:blue", alpha=0.6, linewidth=1)
    if valid:
        ax.plot(*zip(*valid), label="validation", color="tab:orange", marker="o", markersize=3)
    if unigram_bits is not None:
        ax.axhline(
            unigram_bits, color="gray", linestyle="--", linewidth=1, label=f"unigram baseline ({unigram_bits:.2f})"
        )
    if not tone:
        ax.set_xlabel("step")
    ax.set_ylabel("bits per sample")
    ax.set_title(title or "minwave training loss")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")  # an image viewer never sees half a file
    fig.savefig(tmp)
    tmp.replace(path)
    return path

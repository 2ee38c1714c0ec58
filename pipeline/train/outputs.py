"""What a training or evaluation run writes besides checkpoints: JSON-ready metrics and the
confusion matrix figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.atomic import atomic_path
from pipeline.io.png import save_figure


def nan_to_none(obj: Any) -> Any:
    """A metrics dict ready for JSON: NaN -> None, keys as strings (recursively)."""
    if isinstance(obj, dict):
        return {str(k): nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def write_confusion_png(cm: np.ndarray, path: Path, title: str) -> None:
    """Row-normalised confusion matrix (rows = ground truth) as a PNG (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="viridis")
    n = cm.shape[0]
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="fraction of true-class pixels")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        save_figure(fig, tmp, dpi=100)

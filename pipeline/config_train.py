"""The ``train`` section of the configuration: presets, model, loss, optimiser and the run's
data. Part of the one schema (:class:`pipeline.config.Config`); the building blocks are in
:mod:`pipeline.config_sections`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config_sections import EXECUTION, _check_slug, _Model


class TrainConfig(_Model):
    run: str = Field(
        default="default", json_schema_extra=EXECUTION,
        description="Run name: outputs go to <dataset>/train/<run>/ (several runs per dataset, "
        "each resumable on its own).",
    )

    @field_validator("run")
    @classmethod
    def _run_slug(cls, v: str) -> str:
        return _check_slug(v, "train.run")

    preset: Literal["fast", "paper", "official"] = Field(
        default="fast",
        description="'fast' = the small CPU-friendly defaults (hrnet_w18_small, 1 epoch, SGD + "
        "AdamW split); 'paper' = FUSU A.5.2 for train.paper_task: HRNet-W18 (ImageNet weights "
        "from train.pretrained_path when given), batch 8 and that task's optimizer, LR, "
        "schedule and length; 'official' = what the official FUSU train.py does: HRNet-W18, "
        "batch 8, 100 epochs, optimizer 'official', and the official model and loss (model / "
        "loss 'official'). Both set change_fusion 'paper' (the reference model's). Keys set "
        "explicitly override the preset.",
    )
    paper_task: Literal["seg", "scd", "bcd"] = Field(
        default="seg",
        description="Which of the paper's per-task recipes 'paper' uses: seg (SGD lr 0.01, "
        "poly 0.9, 80k iterations), scd (AdamW lr 3e-4, betas 0.5/0.999, linear decay, 200 "
        "epochs) or bcd (as scd with lr 1e-3).",
    )
    optimizer: Literal["split", "sgd", "adamw", "official"] = Field(
        default="split",
        description="split = SGD (+poly) on segmentation parameters and AdamW (+linear decay) "
        "on the change branch; sgd / adamw = one optimizer over everything (the paper's "
        "per-task recipes); official = the official code's one Adam (L2 weight decay "
        "official_weight_decay), official_lr on parameters named 'backbone', 10x that on the "
        "rest, both with poly 0.9 decay per step.",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill the keys a preset decides (explicit keys win)."""
        if not isinstance(data, dict) or data.get("preset") not in ("paper", "official"):
            return data
        task = data.get("paper_task", "seg")
        # both reproduce the reference model, whose change head cancels the series (see
        # change_fusion); the project's 'temporal' fusion stays the 'fast' default
        base: dict[str, Any] = {"hrnet": "hrnet_w18", "batch_size": 8, "tiny": False,
                                "change_fusion": "paper"}
        if data.get("preset") == "official":
            # the official model and loss (pipeline/train/models/fusu_official.py, read from
            # the official code at 317cc6b), its Adam recipe and length
            base.update(model="official", loss="official", optimizer="official",
                        poly_power=0.9, epochs=100, max_steps=None)
        elif task == "seg":
            base.update(optimizer="sgd", seg_lr=0.01, seg_momentum=0.9, seg_weight_decay=1e-4,
                        poly_power=0.9, max_steps=80_000)
        else:
            base.update(optimizer="adamw", change_lr=3e-4 if task == "scd" else 1e-3,
                        change_betas=(0.5, 0.999), epochs=200, max_steps=None)
        return {**base, **data}

    model: Literal["fusunet", "hr_only", "utae", "official"] = Field(
        default="fusunet",
        description="fusunet = the project's FUSU-Net (months 0: hr_only); utae = the "
        "Sentinel-only baseline; official = the official code's FCN + HRNet-W18 + U-TAE "
        "(ported unchanged, needs the series).",
    )
    loss: Literal["fusu", "official"] = Field(
        default="fusu",
        description="fusu = the paper's Eq. 4 (three CE terms + weighted BCE on logits); "
        "official = the official train.py's (outputs clamped to [0, 1], BCE with changed "
        "pixels x2 + 0.5 x (CE1 + CE2) + CE of the series head; official model only).",
    )
    dataset: Literal["native", "expanded"] = Field(
        default="native",
        description="Train on the native FUSU-style dataset (patches.parquet) or on the "
        "expanded change dataset (expand/samples.parquet and its cubes: change only, no "
        "land-use labels).",
    )
    expanded_fp_px: int = Field(
        default=64, ge=8,
        description="Expanded samples: their footprint cubes are resized to this side (px) "
        "(footprints of one dataset differ in size; native footprints are not resized).",
    )
    months: int | None = Field(
        default=None, ge=0, description="Use the last N months (None = all; 0 = HR only)."
    )
    hrnet: str = Field(
        default="hrnet_w18_small",
        description="timm backbone of the HR branch (any features_only model; HRNet default).",
    )
    pretrained_path: str | None = Field(
        default=None, description="Local weights for the HR backbone (None = random init)."
    )
    change_fusion: Literal["temporal", "paper"] = Field(
        default="temporal",
        description="How the change head sees the series: 'temporal' = the series' early/late "
        "change features join |f1 - f2| (the change logits depend on the series); 'paper' = "
        "the paper's / official code's fusion, where the series cancels in |f1 - f2| (ablation).",
    )
    epochs: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=8, ge=1)
    hr_size_px: int | None = Field(
        default=None, ge=32, description="Resize HR inputs (None = native)."
    )
    num_workers: int = Field(default=2, ge=0, json_schema_extra=EXECUTION)
    seg_lr: float = Field(default=0.01, gt=0.0)
    seg_momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    seg_weight_decay: float = Field(default=1e-4, ge=0.0)
    poly_power: float = Field(default=0.9, ge=0.0)
    change_lr: float = Field(default=3e-4, gt=0.0)
    change_betas: tuple[float, float] = Field(default=(0.5, 0.999))
    official_lr: float = Field(
        default=1.5e-4, gt=0.0,
        description="optimizer 'official': the backbone's Adam LR (the rest gets 10x), as the "
        "official train.py's --lr default.")
    official_weight_decay: float = Field(default=1e-4, ge=0.0)
    change_loss_weight: float = Field(default=2.0, ge=0.0)
    checkpoint_every: int = Field(default=50, ge=1)
    eval_every: int = Field(default=200, ge=1)
    bf16: bool = Field(default=True, description="bf16 autocast on GPU.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto")
    tensorboard: bool = Field(default=False, json_schema_extra=EXECUTION)
    seed: int = Field(default=0)
    tiny: bool = Field(default=False, description="Tiny model widths for CPU demo / tests.")
    resume: bool = Field(
        default=True, description="Resume from train/checkpoints/last.pt when it exists."
    )
    augment: bool = Field(
        default=True, description="Random horizontal/vertical flips (both dates, series, box)."
    )
    log_every: int = Field(default=10, ge=1, description="Steps between CSV log rows.")
    ablation_months: list[int] = Field(
        default=[0, 9, 18, 25],
        description="Months of the Table-7 ablation (rule ablation): one run t<N> per entry "
        "(0 = HR only), plus the U-TAE baseline run 'utae'; every other setting is this "
        "section's. A count above what the dataset has uses all its months (the table says "
        "how many were used).",
    )
    eval_split: Literal["train", "val", "test"] = Field(
        default="test", description="Split evaluated / predicted by rules evaluate / predict.",
    )
    weights: Literal["best", "final"] = Field(
        default="best",
        description="Weights of rules evaluate / predict: the run's best-on-val checkpoint "
        "(checkpoints/best.pt, else model.pt) or its final model.pt.",
    )
    max_eval_batches: int | None = Field(
        default=None, ge=1,
        description="Cap on batches per validation during training (None = whole split); the "
        "final validation and test always use the whole split.",
    )

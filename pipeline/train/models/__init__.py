"""Models of the training stage (torch; import only from training code).

:func:`build_model` maps ``TrainConfig`` to a model:

* ``fusunet``: FUSU-Net (U-TAE + HRNet + fusion); ``months=0`` turns it into ``hr_only``.
* ``hr_only``: the bi-temporal HR branch alone (FUSU's "0 time-series" ablation).
* ``utae``: Sentinel-only U-TAE predicting the centre-cropped segmentation.
* ``official``: the official FUSU code's model (:mod:`pipeline.train.models.official`).

``tiny=True`` shrinks every width for CPU demos and tests.
"""

from __future__ import annotations

from typing import Any

from pipeline.config import TrainConfig

N_CLASSES = 18
SENTINEL_BANDS = 14

TINY_UTAE: dict[str, Any] = {"encoder_widths": (16, 16, 32), "decoder_widths": (16, 16, 32),
                             "n_head": 4, "d_k": 4, "d_model": 32}
FULL_UTAE: dict[str, Any] = {"encoder_widths": (64, 64, 64, 128),
                             "decoder_widths": (32, 32, 64, 128),
                             "n_head": 16, "d_k": 4, "d_model": 256}


def model_kind(cfg: TrainConfig) -> str:
    """The effective model: ``fusunet`` with ``months == 0`` is ``hr_only``."""
    if cfg.model == "fusunet" and cfg.months == 0:
        return "hr_only"
    return cfg.model


def build_model(cfg: TrainConfig) -> Any:
    """Instantiate the configured model (random init; local backbone weights if configured)."""
    from pipeline.errors import TrainingError
    from pipeline.train.models.baselines import UTAESeg
    from pipeline.train.models.fusunet import FusuNet

    kind = model_kind(cfg)
    if kind in ("utae", "official") and cfg.months == 0:
        raise TrainingError(
            f"train.model {kind!r} needs the Sentinel series but train.months is 0; set months "
            "to null (all) or a positive number (an HR-only run: model fusunet, months 0)"
        )
    if kind == "official":
        from pipeline.train.models.official import OfficialFusuNet

        return OfficialFusuNet(N_CLASSES, cfg.pretrained_path)
    utae_kwargs = TINY_UTAE if cfg.tiny else FULL_UTAE
    ts_channels = 16 if cfg.tiny else 64
    width = 32 if cfg.tiny else 128
    if kind == "utae":
        return UTAESeg(N_CLASSES, ts_channels, SENTINEL_BANDS, utae_kwargs)
    return FusuNet(
        n_classes=N_CLASSES, backbone=cfg.hrnet, hr_channels=width, head_channels=width,
        ts_channels=ts_channels, use_sentinel=kind == "fusunet", in_ts=SENTINEL_BANDS,
        utae_kwargs=utae_kwargs, pretrained_path=cfg.pretrained_path,
        change_fusion=cfg.change_fusion,
    )

"""The pipeline's error hierarchy.

Every error the pipeline raises on purpose is a :class:`PipelineError`. Its message names the
offending file / AOI / month and says how to fix it. Stages let these propagate: the stage's
``__main__`` block turns them into a one-line message on stderr and a non-zero exit.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Root of every error raised on purpose by the pipeline."""


class ConfigError(PipelineError):
    """The configuration (config.yaml, --config overrides, an AOI file) is invalid."""


class InputError(PipelineError):
    """An input file (image, annotation, scene, index) is missing, unreadable or inconsistent."""


class GridError(PipelineError):
    """Grid / CRS / footprint geometry cannot be built as requested."""


class LabelError(InputError):
    """Annotation polygons cannot be turned into class labels (unknown classes, bad attribute)."""


class SourceError(PipelineError):
    """A Sentinel source failed (no scenes, corrupt scene, remote error)."""


class CredentialsError(SourceError):
    """Earth Engine credentials or project are missing."""


class QuotaExhaustedError(SourceError):
    """Earth Engine quota is exhausted: the run stopped with a resumable state."""


class DatasetError(PipelineError):
    """Dataset assembly failed (splits, export, missing Sentinel data)."""


class TrainingError(PipelineError):
    """The training stage cannot run as configured."""

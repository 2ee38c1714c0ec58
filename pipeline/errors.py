"""The pipeline's error hierarchy.

Every error the pipeline raises on purpose is a :class:`PipelineError`. Its message names the
offending file / AOI / month and says how to fix it. Stages let these propagate: the stage
adapter (``stages/_common.py``) turns them into a one-line message on stderr and a non-zero
exit.

Like rasterio's errors, each kind also subclasses the matching builtin, so callers that do not
know this package can still catch them idiomatically:

==========================  =====================================================
error                        also a
==========================  =====================================================
:class:`ConfigError`         ``ValueError`` (bad configuration value)
:class:`InputError`          ``ValueError`` (an input exists but is unusable)
:class:`MissingInputError`   ``FileNotFoundError`` (a file is not there: an input, or the
                             output of a rule that has not run)
:class:`WriteError`          ``OSError`` (disk full, read-only, failed verification)
:class:`GridError`           ``ValueError``
:class:`SourceError`         ``RuntimeError`` (a Sentinel source failed)
:class:`DatasetError`        ``RuntimeError``
:class:`TrainingError`       ``RuntimeError``
==========================  =====================================================
"""

from __future__ import annotations

import errno


class PipelineError(Exception):
    """Root of every error raised on purpose by the pipeline."""


class ConfigError(PipelineError, ValueError):
    """The configuration (config.yaml, --config overrides, an AOI file) is invalid."""


class InputError(PipelineError, ValueError):
    """An input file (image, annotation, scene, index) is unreadable or inconsistent."""


class MissingInputError(InputError, FileNotFoundError):
    """An input file does not exist (``FileNotFoundError`` with ``errno.ENOENT``)."""

    def __init__(self, message: str, path: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.errno, self.strerror = errno.ENOENT, message
        self.filename = None if path is None else str(path)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:  # picklable (dask workers)
        return (type(self), (self.message, self.filename))


class WriteError(PipelineError, OSError):
    """An output could not be written (disk full, read-only or permission denied, a GDAL write
    error, or the written file failed verification); nothing is left under the final name."""


class GridError(PipelineError, ValueError):
    """Grid / CRS / footprint geometry cannot be built as requested."""


class LabelError(InputError):
    """Annotation polygons cannot be turned into class labels (unknown classes, bad attribute)."""


class SourceError(PipelineError, RuntimeError):
    """A Sentinel source failed (no scenes, corrupt scene, remote error)."""


class CredentialsError(SourceError):
    """Earth Engine credentials or project are missing."""


class HrefRefusedError(SourceError):
    """A catalogue asset href the pipeline refuses to read (GDAL virtual path, local file from a
    remote catalogue, a path outside a static catalogue, a non-public host)."""


class QuotaExhaustedError(SourceError):
    """Earth Engine quota is exhausted: the run stopped with a resumable state."""


class DatasetError(PipelineError, RuntimeError):
    """Dataset assembly failed (splits, export, missing Sentinel data)."""


class TrainingError(PipelineError, RuntimeError):
    """The training stage cannot run as configured."""

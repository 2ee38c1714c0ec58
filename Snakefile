# FUSU-style dataset build. Wiring only: config validation, the AOI table, rules, `rule all`.
# Algorithms live in pipeline/, rule adapters in stages/. See docs/development.md.

from pathlib import Path

from snakemake.logging import logger

from pipeline.aoi import load_aoi
from pipeline.config import check_buildable, check_sources, load_config
from pipeline.errors import ConfigError
from pipeline.io.atomic import remove_tree
from pipeline.io.locks import clear_stale_locks
from pipeline.io.manifest import invalidate_broken_outputs
from pipeline.layout import Layout
from pipeline.sentinel.fetch import mark_retry, months_to_retry
from pipeline.sentinel.sources import preflight


configfile: "config/config.yaml"


# Validated once at parse time (config.yaml merged with --config overrides).
CFG = load_config(config, "configuration (config/config.yaml + --config overrides)")
AOIS = {}
AOI_FILES = {}
for _path in CFG.aois:
    _spec = load_aoi(_path)
    if _spec.name in AOIS:
        raise ConfigError(
            f"AOI files {AOI_FILES[_spec.name]} and {_path} both use the name {_spec.name!r}: "
            "AOI names must be unique (rename one)"
        )
    AOIS[_spec.name] = _spec
    AOI_FILES[_spec.name] = _path
check_sources(CFG, AOIS, AOI_FILES)
L = Layout.of(CFG.results_dir, CFG.dataset)
ROOT = str(L.root)
_MAIN_RUN = getattr(getattr(workflow, "exec_mode", None), "name", "DEFAULT") == "DEFAULT"
try:  # templates next to built AOIs are named; a run of templates only is refused (onstart)
    _template_lines = check_buildable(CFG, AOIS, AOI_FILES) if _MAIN_RUN else []
except ConfigError:
    _template_lines = []
for _line in _template_lines:
    logger.warning(_line)

# Files a stage wrote besides its declared output (patch GeoTIFFs, cube chunks) that were
# deleted or changed since: drop that stage's declared output so Snakemake rebuilds just it.
# What the user's own run checks when it starts (a job's run -- local subprocess or cluster --
# leaves outputs and locks alone: the run that started it owns them).
if _MAIN_RUN and not workflow.dryrun:
    for _lock in clear_stale_locks(Path.cwd()):
        logger.warning(
            f"{_lock}: a killed run left Snakemake's lock and no Snakemake process works in "
            f"{Path.cwd()}: lock removed, resuming"
        )
for _name, _spec in AOIS.items() if _MAIN_RUN else ():
    if _spec.template:
        continue
    for _stage, _problems in invalidate_broken_outputs(L.covered_outputs(_name), L.root,
                                                       CFG.verify_checksums).items():
        logger.warning(
            f"AOI {_name}: {len(_problems)} output file(s) of rule {_stage} are missing or "
            f"changed ({'; '.join(_problems[:3])}): rule {_stage} runs again"
        )
for _stage, _problems in (invalidate_broken_outputs(L.dataset_covered_outputs(), L.root,
                                                   CFG.verify_checksums)
                          if _MAIN_RUN else {}).items():
    logger.warning(
        f"dataset {CFG.dataset}: {len(_problems)} output file(s) of rule {_stage} are missing "
        f"or changed ({'; '.join(_problems[:3])}): rule {_stage} runs again"
    )


# when the run starts executing (not for dry runs or listings): a run of templates only is
# refused, and the Sentinel source is checked once, before any HR stage runs, while months are
# still to fetch: credentials, packages, one landing page / collection request per catalogue;
# a generated AOI's own catalogue is made by the workflow itself (checked only when the build
# reads another one: sentinel.stac.url, or Earth Engine)
onstart:
    check_buildable(CFG, AOIS, AOI_FILES)  # every AOI a template: nothing would be built
    _own_catalogue = CFG.sentinel.source == "stac" and not CFG.sentinel.stac.url
    _pending = [(f"AOI {_n!r} ({AOI_FILES[_n]})", _s.sentinel_archive)
                for _n, _s in AOIS.items()
                if not (_s.template or (_s.generated and _own_catalogue))
                and not L.sentinel_summary(_n).exists()]
    if (CFG.expand.adapter and not CFG.expand.plan_only
            and not L.expand_summary().exists()):
        _pending.append(("expand", CFG.expand.sentinel_archive))
    preflight(CFG.sentinel, _pending)


# months whose catalogue items were skipped, or whose searches came back empty, are fetched
# again by a few later runs
for _name, _spec in AOIS.items() if _MAIN_RUN else ():
    if _spec.template:
        continue
    _retry = months_to_retry(
        {m: (L.month_summary(_name, m), L.ledger_dir(_name, m)) for m in _spec.months},
        CFG.sentinel.stac.skip_retry_runs)
    for _month, _why in _retry.items():
        _n = mark_retry(L.ledger_dir(_name, _month))
        remove_tree(L.month_summary(_name, _month))
        logger.warning(
            f"AOI {_name} month {_month}: {'; '.join(_why[:3])} when it was fetched: fetching "
            f"it again, retry {_n} of {CFG.sentinel.stac.skip_retry_runs} (the catalogue may "
            "have been fixed or filled since; sentinel.stac.skip_retry_runs bounds this)"
        )


wildcard_constraints:
    aoi=r"[a-z0-9][a-z0-9_-]*",
    month=r"\d{4}-\d{2}",
    date=r"t[12]",


# Each rules file appends its final targets here.
ALL_TARGETS: list = []


# Helper functions for the rule files (uses CFG, AOIS, L, ROOT above).
include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/hr.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/sentinel.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/expand.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,

"""The architecture stays true (docs/development.md): thin stages, one driver per rule, file I/O
only in pipeline/io/, `ee` and `torch` only where they belong, no snakemake in the library,
ruff and mypy clean, execution settings out of rule params."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIPELINE = REPO / "pipeline"
STAGES = sorted(p for p in (REPO / "stages").glob("*.py") if not p.name.startswith("_"))

#: Calls that touch the file system. Outside pipeline/io/ only the exceptions below may use them.
FILE_IO = re.compile(
    r"\bopen\(|\.read_text\(|\.write_text\(|\.read_bytes\(|\.write_bytes\(|\.mkdir\(|\.unlink\("
    r"|\.r?glob\(|\.iterdir\(|\.rmdir\(|rasterio\.open|\.to_parquet\(|read_parquet\(|\.to_file\("
    r"|read_file\(|zarr\.open|shutil\.|os\.replace|os\.remove|np\.save\(|\.savefig\("
)
FILE_IO_EXCEPTIONS = {
    # the Earth Engine client reads the service-account key it is pointed at
    "pipeline/sentinel/sources/gee/auth.py": {"open("},
}
#: Foreign change datasets (pipeline/expand/datasets/, one module per dataset as torchgeo keeps
#: them) discover their files and read small text sidecars (split lists, dates, label JSON)
#: themselves; their pixels and every write still go through pipeline/io/.
DISCOVERY = {".glob(", ".rglob(", ".iterdir(", ".read_text("}
DISCOVERY_DIR = "pipeline/expand/datasets/"
#: What pipeline/io/ (the bottom layer) may import of the project.
IO_MAY_IMPORT = {"pipeline.errors", "pipeline.grid", "pipeline.bands", "pipeline.layout"}
#: torch's own (de)serialisation of checkpoints and weights stays with the training code
TORCH_IO = re.compile(r"torch\.(save|load)\(")


def _modules() -> list[Path]:
    return sorted(p for p in PIPELINE.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, in full (``rasterio.features``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _imports(path: Path) -> set[str]:
    """The top-level packages ``path`` imports (``rasterio``)."""
    return {m.split(".")[0] for m in _imported_modules(path)}


def test_stages_are_thin_adapters() -> None:
    assert len(STAGES) >= 15
    for path in STAGES:
        src = path.read_text()
        assert len(src.splitlines()) <= 40, f"{path.name}: over 40 lines, move logic to a driver"
        tree = ast.parse(src)
        loops = [n for n in ast.walk(tree)
                 if isinstance(n, ast.For | ast.While | ast.comprehension)]
        assert not loops, f"{path.name} has loops: they belong in the rule's driver"
        assert "run_stage(snakemake" in src, f"{path.name} does not use run_stage"


def test_every_rule_script_calls_a_driver_in_pipeline() -> None:
    for path in STAGES:
        mods = {n.module for n in ast.walk(ast.parse(path.read_text()))
                if isinstance(n, ast.ImportFrom) and n.module}
        drivers = [m for m in mods if m.startswith("pipeline.")]
        assert drivers, f"{path.name} imports no driver"
        assert all(m.endswith((".drivers", ".qa")) for m in drivers), (path.name, drivers)


def test_library_never_imports_snakemake_or_stages() -> None:
    for path in _modules():
        bad = _imports(path) & {"snakemake", "stages"}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_ee_and_torch_only_where_they_belong() -> None:
    gee = PIPELINE / "sentinel" / "sources" / "gee"
    torch_ok = (PIPELINE / "train", PIPELINE / "dataset" / "torchds.py",
                PIPELINE / "dataset" / "torch_expanded.py", PIPELINE / "dataset" / "collate.py")
    for path in _modules():
        names = _imports(path)
        if "ee" in names:
            assert path.is_relative_to(gee), f"{path.relative_to(REPO)} imports ee"
        if names & {"torch", "timm", "torchvision"}:
            assert any(path == p or path.is_relative_to(p) for p in torch_ok), (
                f"{path.relative_to(REPO)} imports torch"
            )


def test_file_io_only_in_io_modules() -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("pipeline/io/"):
            continue
        allowed = FILE_IO_EXCEPTIONS.get(rel, set()) | (
            DISCOVERY if rel.startswith(DISCOVERY_DIR) else set())
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            hits = {m.group(0) for m in FILE_IO.finditer(code)} - allowed
            if TORCH_IO.search(code) and not rel.startswith("pipeline/train/"):
                hits.add("torch.save/load")
            if hits:
                offenders.append(f"{rel}:{i}: {sorted(hits)}")
    assert not offenders, "file I/O outside pipeline/io/:\n" + "\n".join(offenders)


def test_execution_settings_stay_out_of_rule_params() -> None:
    from pipeline.config import load_config

    base = load_config({})
    tuned = load_config({"sentinel": {"gee": {"concurrency": 3, "max_retries": 1,
                                              "timeout_s": 60.0, "project": "other"}},
                         "train": {"num_workers": 7}, "dask": {"address": "tcp://h:1"}})
    assert base.section("sentinel") == tuned.section("sentinel")
    assert base.section("train") == tuned.section("train")
    assert "concurrency" not in base.section("sentinel")["gee"]
    # settings that decide the bytes are params: changing one changes the section
    recipe = load_config({"sentinel": {"cloud_probability_threshold": 30}})
    assert recipe.section("sentinel") != base.section("sentinel")
    blocks = load_config({"sentinel": {"gee": {"max_block_bytes": 1 << 20}}})
    assert blocks.section("sentinel") != base.section("sentinel")


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    out = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_mypy_is_clean() -> None:
    pytest.importorskip("mypy")
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:]


#: In a fresh interpreter: import the third-party packages named on the command line (best
#: effort), then fork one child per project module named on stdin, which imports it first
#: (no project module is loaded before the fork); prints ``[[name, exit code, traceback], ...]``
#: as JSON.
_FORK_IMPORTER = r"""
import importlib, json, os, sys, traceback
for pkg in sys.argv[1:]:
    try:
        importlib.import_module(pkg)
    except Exception:
        pass
assert not any(m == "pipeline" or m.startswith("pipeline.") for m in sys.modules)
results = []
for name in sys.stdin.read().split():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        rc, err = 0, ""
        try:
            importlib.import_module(name)
        except BaseException:
            rc, err = 1, traceback.format_exc()
        os.write(w, err.encode())
        os._exit(rc)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    results.append([name, os.waitstatus_to_exitcode(status), b"".join(chunks).decode()])
print(json.dumps(results))
"""


def test_every_module_imports_on_its_own() -> None:
    """Each module imports first, with no other project module loaded (what a user's script or
    a DataLoader worker does), so no import cycle hides behind the order the test suite happens
    to import modules in.

    One interpreter imports the third-party packages the project uses (numpy, rasterio, torch,
    ...: they cannot take part in a cycle of ours) and forks a child per module; the child
    imports the module first: 22-27 s instead of 57 s for one interpreter per module (121
    modules, 2 cores, 2026-12-08). On platforms without fork, one interpreter per module."""
    import json
    import os

    modules = _modules()
    names = [_module_name(p) for p in modules if p.name != "__main__.py"]
    ours = {"pipeline", "stages", "benchmarks", "tests"}
    third_party = sorted(m for m in {m for p in modules for m in _imported_modules(p)}
                         if m.split(".")[0] not in ours | set(sys.stdlib_module_names))
    if hasattr(os, "fork"):
        r = subprocess.run([sys.executable, "-c", _FORK_IMPORTER, *third_party],
                           input="\n".join(names), cwd=REPO, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        results = [tuple(x) for x in json.loads(r.stdout)]
    else:  # pragma: no cover - fork is there on Linux and macOS
        results = [(n, (p := subprocess.run([sys.executable, "-c", f"import {n}"], cwd=REPO,
                                            capture_output=True, text=True, timeout=300))
                    .returncode, p.stderr) for n in names]
    assert [n for n, _, _ in results] == names
    bad = [(n, err) for n, rc, err in results if rc != 0]
    assert not bad, "\n\n".join(f"{n}:\n{e}" for n, e in bad)


def _project_imports(path: Path) -> set[str]:
    """Every ``pipeline.*`` module ``path`` imports, at module level or inside functions,
    resolved to a module file (``from pipeline.x import name`` -> ``pipeline.x``)."""
    names = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
             for p in _modules()}
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for t in targets:
            while t and t not in names:
                t = t.rpartition(".")[0]
            if t.startswith("pipeline"):
                out.add(t)
    return out


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def test_io_is_the_bottom_layer() -> None:
    """pipeline/io/ imports nothing of the project but errors, grid, bands and layout (and
    itself), lazily or not: no domain knowledge hides in the I/O layer."""
    bad = []
    for path in _modules():
        name = _module_name(path)
        if not name.startswith("pipeline.io"):
            continue
        for dep in sorted(_project_imports(path)):
            if not (dep.startswith("pipeline.io") or dep in IO_MAY_IMPORT or dep == name):
                bad.append(f"{name} -> {dep}")
    assert not bad, "pipeline/io/ imports upward:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    """The project's import graph (lazy imports included) has no cycle, so no module needs a
    re-export or a function-level import to load."""
    graph = {_module_name(p): _project_imports(p) - {_module_name(p)} for p in _modules()}
    # a package's __init__ importing its own submodules is not a cycle of the layers
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d):], d])
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_reexports_behind_noqa() -> None:
    """No ``# noqa: E402`` imports (re-exports placed after code to dodge a cycle)."""
    bad = [f"{p.relative_to(REPO)}:{i}" for p in _modules()
           for i, line in enumerate(p.read_text().splitlines(), 1) if "noqa: E402" in line]
    assert not bad, bad


#: Rule params that declare a config section under another name (derived values): only what
#: the name says decides the rule's bytes, and the stage reads nothing else of that section.
DERIVED_PARAMS = {
    "dataset_root": {"results_dir", "dataset"},
    "_EXPAND_INDEX_CFG": {"expand"},          # the expand section less the fetch-only keys
    "_EXPAND_FETCH_CFG": {"expand"},          # expand.sentinel_archive
    "_EXPAND_BLOCK_PX": {"sentinel"},         # block_side_px(sentinel): the index's blocks
    "_DATASET_AOI_PARAMS": set(),
}
#: Sections that only say how a job runs (never its bytes): readable by every stage.
EXECUTION_SECTIONS = {"dask"}


def _rule_blocks() -> list[tuple[str, str]]:
    """(rule text, stage script name) of every rule of workflow/rules/ with a script."""
    out = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        starts = [m.start() for m in re.finditer(r"^\s*(rule|checkpoint)\b.*:\s*$", text, re.M)]
        for a, b in zip(starts, [*starts[1:], len(text)], strict=False):
            block = text[a:b]
            m = re.search(r'"\.\./\.\./stages/(\w+)\.py"', block)
            if m:
                out.append((block, m.group(1)))
    return out


def _declared(block: str) -> set[str]:
    """The config sections / fields a rule's params declare (``CFG.section("x")`` -> x,
    ``CFG.x.y`` -> x.y, ``CFG.x`` -> x, derived names per :data:`DERIVED_PARAMS`)."""
    params = block.split("params:", 1)[1] if "params:" in block else ""
    params = re.split(r"^\s{4,8}(log|conda|script|threads|resources|output|input)\s*:", params,
                      maxsplit=1, flags=re.M)[0]
    out = set(re.findall(r'CFG\.section\("(\w+)"\)', params))
    out |= {m for m in re.findall(r"CFG\.(\w+(?:\.\w+)?)", params) if not m.startswith("section")}
    for name, sections in DERIVED_PARAMS.items():
        if re.search(rf"\b{name}\b", params):
            out |= sections
    return out


def test_stages_read_only_the_config_their_rule_declares() -> None:
    """A stage reads only the config sections (or fields) its rule's params declare, so every
    setting that decides a rule's bytes is a rerun trigger of that rule; execution sections
    (dask) are free. Rules sharing a script are checked against the union of their params."""
    declared: dict[str, set[str]] = {}
    for block, script in _rule_blocks():
        declared.setdefault(script, set()).update(_declared(block))
    bad = []
    for script, decl in sorted(declared.items()):
        src = (REPO / "stages" / f"{script}.py").read_text()
        for sec, field in set(re.findall(r"\bconfig\.(\w+)(?:\.(\w+))?", src)):
            if sec in EXECUTION_SECTIONS or sec in decl or f"{sec}.{field}" in decl:
                continue
            bad.append(f"stages/{script}.py reads config.{sec}{'.' + field if field else ''} "
                       f"but its rule declares only {sorted(decl)}")
    assert declared and not bad, "\n".join(bad)


def test_one_digest_module() -> None:
    """Every digest that decides reuse is computed by pipeline/io/digest.py (the demo's
    seeded noise hashes its seed, which decides no freshness)."""
    allowed = {"pipeline/io/digest.py", "pipeline/demo/sentinel_scenes.py"}
    users = {p.relative_to(REPO).as_posix() for p in _modules() if "hashlib" in _imports(p)}
    assert users <= allowed, sorted(users - allowed)


def test_module_and_function_names_are_distinct() -> None:
    """Each concept lives in one place under its own name: no two modules share a file name
    (but the packages' ``__init__`` and the ``drivers`` convention), no two public top-level
    functions share a name."""
    from collections import Counter

    names = Counter(p.name for p in _modules() if p.name not in ("__init__.py", "drivers.py"))
    assert not [n for n, c in names.items() if c > 1], names.most_common(3)
    funcs: Counter[str] = Counter()
    for p in _modules():
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                funcs[node.name] += 1
    assert not [n for n, c in funcs.items() if c > 1], [n for n, c in funcs.items() if c > 1]


def test_no_project_file_refers_outside_the_repository() -> None:
    """A user's clone has only the repository: no tracked file cites the steering notes or a
    folder beside the checkout."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    needles = ("DESIGN" + ".md", "../" + "shared")
    bad = []
    for rel in files:
        p = REPO / rel
        if p.suffix not in (".py", ".md", ".smk", ".yaml", ".toml", ".sh", ".cff", "") or \
                not p.is_file():
            continue
        text = p.read_text(errors="ignore")
        bad += [f"{rel}: {n}" for n in needles if n in text]
    assert not bad, bad

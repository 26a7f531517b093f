"""Reproducible, notebook-first companion to the thesis 'Trustworthy Neural Architecture Search' (Hosseini, 2024)

Modules:

- `trustnas_nb.core`: The machinery every chapter shares: where data and outputs live, how runs are seeded, which device they use, how big they are (`ci` / `cpu` / `paper`), and how tables and figures are written so that each one says what produced it.
- `trustnas_nb.ops`: The candidate operations of the DARTS family as plain `nn.Module`s made of standard layers, and the search spaces as *data*: which operations sit on which edge, how many nodes a cell has, and how a cell is discretized.
- `trustnas_nb.reference`: Tables transcribed from the thesis text (`seeds/000_…`), used only for side-by-side comparison with what our runs measure. Nothing here is ever reported as a measurement of ours.
- `trustnas_nb.reproduce`: `trustnas reproduce` runs every experiment notebook with papermill at a chosen scale, keeps the executed notebooks and their tables and figures under `outputs/`, and assembles `outputs/REPORT.md`."""

# This is the one hand-written file of the package: nbdev keeps the version and the module docstring
# (generated from the notebooks) here, and the stable entry points below are resolved lazily, so that
# `import trustnas_nb` stays fast: torch is imported only when an attribute that needs it is first used.
__version__ = "0.1.0"

import importlib as _importlib

# public name -> module that defines it (resolved on first access)
_LAZY = {
    # foundation
    'load_settings': 'core', 'seed_everything': 'core', 'get_device': 'core', 'preset': 'core',
    'Outputs': 'core', 'SCALES': 'core',
    'get_dataset': 'datasets', 'get_real_dataset': 'loaders',
    'reproduce': 'reproduce',
    # DARTS-family core
    'PRIMITIVES': 'ops', 'SPACES': 'ops', 'get_space': 'ops',
    'Genotype': 'genotypes', 'parse_genotype': 'genotypes', 'format_genotype': 'genotypes',
    'GENOTYPES': 'genotypes', 'get_genotype': 'genotypes', 'derive_genotype': 'genotypes',
    'build_network': 'evalnet', 'count_parameters': 'evalnet',
    'SuperNet': 'supernet', 'build_supernet': 'supernet',
    'Level': 'mlo', 'MLOProblem': 'mlo', 'hypergradient': 'mlo',
    'run_search': 'search', 'random_search': 'search',
}
_MODULES = ('core', 'datasets', 'loaders', 'reproduce', 'ops', 'genotypes', 'supernet', 'evalnet', 'mlo', 'search')

def __getattr__(name):
    if name in _MODULES: return _importlib.import_module(f'{__name__}.{name}')
    if name in _LAZY:
        mod = _importlib.import_module(f'{__name__}.{_LAZY[name]}')
        return getattr(mod, name)
    raise AttributeError(f"module 'trustnas_nb' has no attribute {name!r}")

def __dir__(): return sorted(list(globals()) + list(_LAZY) + list(_MODULES))

"""Render README.md from nbs/index.ipynb (nbdev's own README builder needs Quarto, which this project does not require).

Markdown cells are copied; code cells become fenced Python blocks; the title cell's `> summary` line is kept.
Run: python nbs/make_readme.py   (also part of `make nb`; tests/test_readme.py checks README.md is up to date)."""
import json, sys
from pathlib import Path

def render(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    parts = ['<!-- generated from nbs/index.ipynb by nbs/make_readme.py; edit the notebook, not this file -->']
    for c in nb['cells']:
        src = ''.join(c.get('source', '')).strip('\n')
        if not src: continue
        if c['cell_type'] == 'markdown': parts.append(src)
        elif c['cell_type'] == 'code' and not src.lstrip().startswith('#|'): parts.append(f'```python\n{src}\n```')
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    root = Path(__file__).resolve().parents[1]
    out = root/'README.md'
    txt = render(root/'nbs'/'index.ipynb')
    if '--check' in sys.argv:
        sys.exit(0 if out.is_file() and out.read_text(encoding='utf-8') == txt else 'README.md is out of date: run python nbs/make_readme.py')
    out.write_text(txt, encoding='utf-8')

"""Build the documentation site into _docs/ from the notebooks, then check its links (nbdev's own `nbdev-docs` needs Quarto,
whose PyPI package downloads a binary at install time; this builder needs only nbconvert, which nbdev already brings).

The site: `index.html` (nbs/index.ipynb, plus a table of contents), one page per notebook in nbs/ (as committed, i.e.
code and prose without outputs, since nbdev-clean strips them; with `--execute` each is run first, in parallel worker
processes, with the cells nbdev-test runs, so plots and printed results are on the page: about 14 minutes for all of
them on 2 busy cores, 10_bounds and 11_dsrna alone 9, hence not the default), one page per experiment notebook in
nbs/experiments/ (the executed notebook of the `--scale` run under the outputs directory when there is one, with the
figures that run wrote; else the notebook as committed, with a note saying so), `report/` (REPORT.html / REPORT.md and
what they link to, when present) and `api/` (one page per module of trustnas_nb: its public names with signatures and
docstrings, each linked to the notebook cell that defines it; read from the module source, nothing is imported).
Equations stay `$...$` / `$$...$$` in the pages for MathJax (the nbconvert template loads it); images are embedded as
data URIs.

Then every internal `href`/`src` of every page must resolve to a file in the site, and every `#anchor` to an `id` (or
`name`) in the target page; external links are listed, not fetched. Broken links are listed and make the exit status
non-zero, as does a notebook that fails to execute.

Run: python nbs/make_docs.py [--out DIR] [--only GLOB[,GLOB...]] [--outputs DIR] [--scale cpu] [--execute [--jobs N]]
     python nbs/make_docs.py --check [--out DIR]         (the link check alone, over an existing site)"""
import argparse, ast, fnmatch, html, json, os, re, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
MARKER = '.make_docs'          # written into every site this script builds: only such a folder is ever emptied
GROUPS = {'0': 'Core and shared machinery', '1': 'Chapter 1: robust NAS (DSRNA)', '2': 'Chapter 2: learning by grouping (LBG / DALBG)',
          '3': 'Chapter 3: image understanding by captioning (IUC)', '4': 'Chapter 4: saliency-aware NAS (SANAS)',
          '5': 'Neighbouring methods (seeds 002 to 004)'}
DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

# ---------------------------------------------------------------- link check
class _Scan(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True); self.ids, self.refs = set(), []
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if v is None: continue
            if k == 'id' or (k == 'name' and tag == 'a'): self.ids.add(v)
            elif k in ('href', 'src') and tag != 'base': self.refs.append(v)
    handle_startendtag = handle_starttag

def _scan(page: Path) -> _Scan:
    s = _Scan(); s.feed(page.read_text(encoding='utf-8', errors='replace')); s.close(); return s

def check_links(site) -> tuple[list[str], dict[str, list[str]]]:
    """(broken, external) for the HTML pages under `site`: `broken` names each internal link whose file is not in the site
    or whose `#anchor` is no id of the target page; `external` maps each external URL to the pages that use it."""
    site = Path(site).resolve()
    if not site.is_dir(): raise FileNotFoundError(f'no site at {site}: build it first (python nbs/make_docs.py)')
    pages = sorted(p for p in site.rglob('*.html') if p.is_file())
    scans, broken, external = {}, [], {}
    def scan(p):
        if p not in scans: scans[p] = _scan(p)
        return scans[p]
    rel = lambda p: p.relative_to(site).as_posix()
    for page in pages:
        for ref in scan(page).refs:
            r = ref.strip()
            if not r or r == '#' or r.lower().startswith(('data:', 'mailto:', 'javascript:', 'tel:')): continue
            u = urlsplit(r)
            if u.scheme or u.netloc: external.setdefault(r, []).append(rel(page)); continue
            path, frag = unquote(u.path), unquote(u.fragment)
            target = page if not path else (page.parent/path).resolve()
            if path.endswith('/'): target = target/'index.html'
            if not target.is_relative_to(site):
                broken.append(f'{rel(page)}: broken link {ref!r} (points outside the site)'); continue
            if not target.is_file():
                broken.append(f'{rel(page)}: broken link {ref!r} (no file {rel(target)} in the site)'); continue
            if frag and target.suffix.lower() in ('.html', '.htm') and frag not in scan(target).ids and u.fragment not in scan(target).ids:
                broken.append(f"{rel(page)}: broken anchor {ref!r} (no id '{frag}' in {rel(target)})")
    return broken, external

def report_links(site, verbose=True) -> int:
    broken, external = check_links(site)
    n = sum(1 for _ in Path(site).rglob('*.html'))
    if verbose and external:
        print(f'{len(external)} external link(s), not fetched:')
        for u, ps in sorted(external.items()): print(f'  {u}  ({len(ps)} page{"s" if len(ps) > 1 else ""}, e.g. {ps[0]})')
    for b in broken: print('BROKEN', b, file=sys.stderr)
    print(f'link check over {n} pages: ' + (f'{len(broken)} broken link(s)' if broken else 'every internal link and anchor resolves'))
    return 1 if broken else 0

# ---------------------------------------------------------------- notebooks
def read_nb(path):
    import nbformat
    from nbformat.v4.rwbase import rejoin_lines                 # execnb and papermill write text as lists of lines
    return rejoin_lines(nbformat.from_dict(json.loads(Path(path).read_text(encoding='utf-8'))))

def _src(cell) -> str:
    s = cell.get('source', '')
    return ''.join(s) if isinstance(s, list) else s

def title_summary(nb, fallback: str) -> tuple[str, str]:
    "The first `# ` heading of the notebook's markdown and the text after it (its `> ` summary, else its first paragraph)."
    for c in nb.cells:
        if c.cell_type != 'markdown': continue
        lines = _src(c).strip().splitlines()
        if not lines or not lines[0].startswith('# '): continue
        rest = '\n'.join(lines[1:]).strip()
        quote = [l[1:].strip() for l in rest.splitlines() if l.startswith('>')]
        para = ' '.join(quote) if quote else ' '.join(rest.split('\n\n')[0].split())
        return lines[0][2:].strip(), para
    return fallback, ''

def plain(md: str) -> str:
    return re.sub(r'[`*$]', '', md)

def _short(text: str, n=260) -> str:
    return text if len(text) <= n else text[:n].rsplit(' ', 1)[0] + ' …'

def directives(source: str) -> tuple[dict, str]:
    "nbdev's `#| name [value]` lines at the top of a code cell, and the source without them."
    d, lines = {}, source.splitlines()
    i = 0
    while i < len(lines) and (DIRECTIVE.match(lines[i]) or not lines[i].strip()):
        m = DIRECTIVE.match(lines[i])
        if m: d[m.group(1).lower()] = m.group(2).lower()
        i += 1
    return d, '\n'.join(lines[i:]).strip('\n')

def _rewrite_links(md: str, here: Path, link_for, page_dir: str) -> str:
    """Relative Markdown links `[text](target)` whose target `link_for` knows point where it says: a page of the site
    (made relative to `page_dir`) or a URL. Images and links it does not know are left as written (the link check judges them)."""
    def sub(m):
        target = m.group(2)
        u = urlsplit(target)
        if u.scheme or u.netloc or not u.path: return m.group(0)
        new = link_for((here/unquote(u.path)).resolve())
        if new is None: return m.group(0)
        if not urlsplit(new).scheme: new = os.path.relpath(new, page_dir) if page_dir else new
        return f'{m.group(1)}({new}{"#" + u.fragment if u.fragment else ""})'
    return re.sub(r'((?<!!)\[[^\]]*\])\(([^()\s]+)\)', sub, md)

def for_display(nb, here: Path, link_for, page_dir: str):
    """The notebook as its page shows it: `#| hide` cells and cells left empty are dropped, directive lines removed,
    `echo: false` / `output: false` honoured, exported cells tagged; links to notebooks become links to their pages."""
    import copy
    nb = copy.deepcopy(nb); cells = []
    for c in nb.cells:
        if c.cell_type == 'markdown':
            c.source = _rewrite_links(_src(c), here, link_for, page_dir); cells.append(c); continue
        if c.cell_type != 'code': cells.append(c); continue
        d, body = directives(_src(c))
        if 'hide' in d or d.get('include') == 'false': continue
        c.source = body
        c.metadata.pop('execution', None)                      # execnb's timings (floats) do not validate as nbformat's strings
        if d.get('echo') == 'false': c.metadata['transient'] = {'remove_source': True}
        if d.get('output') == 'false': c.outputs = []
        if 'export' in d or 'exports' in d: c.metadata.setdefault('tags', []).append('docs-export')
        if not body.strip() and not c.get('outputs'): continue
        cells.append(c)
    nb.cells = cells
    return nb

# ---------------------------------------------------------------- execution (one process per notebook)
def _exec_one(src: str, dst: str, timeout: int) -> int:
    "Worker: run the cells of `src` that nbdev-test runs (its skip flags from pyproject's [tool.nbdev]); write the result to `dst`."
    import traceback
    from execnb.shell import CaptureShell
    from fastcore.nbio import write_nb
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    src = Path(src).resolve()
    try: flags = get_config(src.parent).tst_flags
    except Exception: flags = ''                                 # a notebook outside any nbdev project: run every cell
    flags = flags.split() if isinstance(flags, str) else list(flags or [])
    nb = NBProcessor(src, rm_directives=False, process=True).nb
    try:
        from nbdev.test import _skip_cell                       # exactly nbdev-test's choice of cells
        skip = _skip_cell(nb, flags)
    except ImportError:
        skip = lambda c: c.cell_type != 'code' or bool(set(flags) & set((getattr(c, 'directives_', None) or {}).keys()))
    os.environ['IN_TEST'] = '1'
    shell, ok = CaptureShell(src), True
    cwd = os.getcwd(); os.chdir(src.parent)
    try: shell.run_all(nb, exc_stop=True, preproc=skip, cell_timeout=timeout or None)
    except BaseException:
        ok = False
        sys.stderr.write(shell.prettytb(fname=src) or traceback.format_exc())
    finally: os.chdir(cwd)
    write_nb(nb, dst)
    return 0 if ok else 1

def execute_all(paths: list[Path], jobs: int, timeout: int, tmp: Path) -> dict:
    """Run each notebook in its own process, `jobs` at a time, largest first. Returns {path: (executed notebook or None,
    seconds, error text or '')}; a notebook that fails keeps the outputs up to the failing cell."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'), PYTHONUNBUFFERED='1')
    env.pop('MPLBACKEND', None)                                 # the capture shell selects the inline backend itself
    def one(p):
        dst, t0 = tmp/f'{p.stem}.executed.ipynb', time.perf_counter()
        try:
            r = subprocess.run([sys.executable, str(Path(__file__).resolve()), '--exec-one', str(p), str(dst), '--cell-timeout', str(timeout)],
                               capture_output=True, text=True, env=env, timeout=max(60, 3 * timeout))
            err = '' if r.returncode == 0 else (r.stderr.strip()[-3000:] or f'exit status {r.returncode}')
        except subprocess.TimeoutExpired: err = f'did not finish within {max(60, 3 * timeout)} s'
        nb = read_nb(dst) if dst.is_file() else None
        return p, (nb, time.perf_counter() - t0, err)
    order = sorted(paths, key=lambda p: -p.stat().st_size)
    with ThreadPoolExecutor(max(1, jobs)) as ex: return dict(ex.map(one, order))

# ---------------------------------------------------------------- API pages (read from the module sources)
def _sig_args(args: ast.arguments, drop_self=False) -> str:
    a = ast.unparse(args)
    return re.sub(r'^(self|cls)(\s*:[^,]*)?(,\s*|$)', '', a) if drop_self else a

def _dataclass_sig(node: ast.ClassDef) -> str:
    parts = []
    for s in node.body:
        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) and 'ClassVar' not in ast.unparse(s.annotation):
            parts.append(f'{s.target.id}: {ast.unparse(s.annotation)}' + (f' = {ast.unparse(s.value)}' if s.value is not None else ''))
    return ', '.join(parts)

def _entry(node, cell):
    deco = [ast.unparse(d) for d in getattr(node, 'decorator_list', [])]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        ret = f' -> {ast.unparse(node.returns)}' if node.returns is not None else ''
        kind = 'async function' if isinstance(node, ast.AsyncFunctionDef) else 'function'
        return dict(name=node.name, kind=kind, sig=f'{"async " if kind != "function" else ""}def {node.name}({_sig_args(node.args)}){ret}',
                    doc=ast.get_docstring(node) or '', cell=cell, members=[])
    if isinstance(node, ast.ClassDef):
        bases = ', '.join(ast.unparse(b) for b in node.bases + node.keywords) if (node.bases or node.keywords) else ''
        init = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == '__init__'), None)
        if any(d.split('(')[0].endswith('dataclass') for d in deco): call = f'{node.name}({_dataclass_sig(node)})'
        elif init is not None: call = f'{node.name}({_sig_args(init.args, drop_self=True)})'
        else: call = ''
        members = []
        for s in node.body:
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and (not s.name.startswith('_') or s.name == '__call__'):
                prop = any(ast.unparse(d) in ('property', 'cached_property', 'functools.cached_property') for d in s.decorator_list)
                members.append(dict(name=s.name, sig=s.name if prop else f'{s.name}({_sig_args(s.args, drop_self=True)})',
                                    kind='property' if prop else ('staticmethod' if 'staticmethod' in map(ast.unparse, s.decorator_list) else 'method'),
                                    doc=(ast.get_docstring(s) or '').strip().split('\n\n')[0]))
        kind = ('dataclass' if any(d.split('(')[0].endswith('dataclass') for d in deco) else 'class') + (f' ({bases})' if bases else '')
        return dict(name=node.name, kind=kind, sig=call or node.name, doc=ast.get_docstring(node) or '', cell=cell, members=members)
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    val = ast.unparse(node.value) if node.value is not None else ''
    return [dict(name=t.id, kind='constant', sig=f'{t.id} = {_short(val, 160)}' if val else t.id, doc='', cell=cell, members=[])
            for t in targets if isinstance(t, ast.Name)]

def module_api(py: Path) -> dict:
    """The public API of one exported module: its docstring, the notebook it is exported from, and each name of its
    `__all__` (else each public top-level name) with kind, signature, docstring and the id of the notebook cell defining it."""
    text = py.read_text(encoding='utf-8'); tree = ast.parse(text)
    m = re.search(r'File to edit: (\S+?\.ipynb)', text)
    notebook = Path(m.group(1)).stem if m else None
    marks = [(i + 1, mm.group(2) if mm.group(1).endswith('.ipynb') else None)        # `# %% ../nbs/X.ipynb #<cell id>` (nbdev 3)
             for i, line in enumerate(text.splitlines()) for mm in [re.match(r'# %% (\S+) #(\S+)', line)] if mm]
    cell_of = lambda line: next((cid for ln, cid in reversed(marks) if ln <= line), None)
    public = None
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '__all__' for t in n.targets):
            public = list(ast.literal_eval(n.value))
    found = {}
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): es = [_entry(n, cell_of(n.lineno))]
        elif isinstance(n, (ast.Assign, ast.AnnAssign)): es = _entry(n, cell_of(n.lineno))
        else: continue
        for e in es: found[e['name']] = e                      # the last definition wins, as at import
    names = public if public is not None else [k for k in found if not k.startswith('_')]
    entries = [found.get(k, dict(name=k, kind='name', sig=k, doc='(defined outside the top level of the module)', cell=None, members=[]))
               for k in names if k != '__all__']
    doc = (ast.get_docstring(tree) or '').split('\n\nDocs:')[0].strip()
    return dict(module=f'{py.parent.name}.{py.stem}', name=py.stem, doc=doc, notebook=notebook, entries=entries)

def _md_escape(s: str) -> str: return s.replace('[', r'\[').replace(']', r'\]')

def api_markdown(api: dict, nb_page: str | None, visible: set) -> str:
    "An API page as Markdown (rendered by the same exporter as the notebooks)."
    src = f'[{api["notebook"]}.ipynb]({nb_page})' if nb_page else (f'`nbs/{api["notebook"]}.ipynb`' if api['notebook'] else 'its module source')
    out = [f'# `{api["module"]}`', '', api['doc'], '', f'Exported from {src}. Public names: ' +
           (', '.join(f'[`{e["name"]}`](#{e["name"]})' for e in api['entries']) or 'none') + '.', '']
    for e in api['entries']:
        out += [f'## `{e["name"]}`', '', f'*{e["kind"]}*' + (f' · [defined in {api["notebook"]}.ipynb]({nb_page}#cell-id={e["cell"]})'
                if nb_page and e['cell'] in visible else (f' · [in {api["notebook"]}.ipynb]({nb_page})' if nb_page else '')), '',
                '```python', e['sig'], '```', '']
        if e['doc']: out += [e['doc'], '']
        if e['members']:
            out += ['Members:', ''] + [f'- `{m["sig"]}` ({m["kind"]})' + (f': {" ".join(m["doc"].split())}' if m['doc'] else '') for m in e['members']] + ['']
    return '\n'.join(out)

# ---------------------------------------------------------------- rendering
TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block notebook_css %}<link rel="stylesheet" href="{{ resources.docs.root }}static/nbconvert.css">
<link rel="stylesheet" href="{{ resources.docs.root }}static/docs.css">{% endblock notebook_css %}
{%- block body_header -%}{{ super() }}
{{ resources.docs.nav }}{{ resources.docs.banner }}{%- endblock body_header -%}
{% block body_footer %}{{ resources.docs.footer }}{{ super() }}{% endblock body_footer %}"""

DOCS_CSS = """nav.docs-nav{position:sticky;top:0;z-index:10;background:#f7f7f9;border-bottom:1px solid #ddd;padding:6px 12px;font:14px system-ui,sans-serif;margin:-8px -8px 12px}
nav.docs-nav a{margin-right:1.2em;text-decoration:none}nav.docs-nav a.home{font-weight:600}
.docs-note{border-left:4px solid #d9a400;background:#fffbe6;padding:8px 12px;margin:8px 0 16px;font:14px system-ui,sans-serif}
.docs-note.error{border-color:#c62828;background:#fdecea}.docs-footer{color:#777;font:12px system-ui,sans-serif;margin:24px 0 8px}
a.anchor-link{display:none}h1:hover>a.anchor-link,h2:hover>a.anchor-link,h3:hover>a.anchor-link{display:inline;margin-left:.3em;text-decoration:none}
.celltag_docs-export .jp-InputArea-editor{border-left:3px solid #4a90d9}
.jp-InputArea{overflow:hidden}.jp-Collapser{display:none}.jp-OutputArea-output pre{line-height:inherit;font-family:inherit}
body.jp-Notebook{max-width:1100px;margin:0 auto;padding:8px}
"""

class Site:
    def __init__(self, out: Path, have_report: bool):
        from jinja2 import DictLoader
        from nbconvert import HTMLExporter
        self.out, self.have_report = out, have_report
        self.ex = HTMLExporter(template_name='lab', extra_loaders=[DictLoader({'trustnas_docs.html.j2': TEMPLATE})],
                               template_file='trustnas_docs.html.j2', embed_images=True,
                               exclude_input_prompt=True, exclude_output_prompt=True)
        self.pages = []

    def nav(self, root: str) -> str:
        links = [(f'{root}index.html', 'trustnas-nb', 'home'), (f'{root}index.html#docs-notebooks', 'Notebooks', ''),
                 (f'{root}index.html#docs-experiments', 'Experiments', ''), (f'{root}api/index.html', 'API', '')]
        if self.have_report: links.append((f'{root}report/REPORT.html', 'Report', ''))
        return '<nav class="docs-nav">' + ''.join(f'<a class="{c}" href="{h}">{t}</a>' for h, t, c in links) + '</nav>\n'

    def render(self, nb, rel: str, title: str, path: Path, banner: str = ''):
        dest = self.out/rel; dest.parent.mkdir(parents=True, exist_ok=True)
        root = '../' * rel.count('/')
        nb.metadata['title'] = plain(title)
        footer = f'<p class="docs-footer">Built by nbs/make_docs.py from {html.escape(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name)}.</p>'
        res = {'metadata': {'name': plain(title), 'path': str(path.parent)},
               'docs': {'root': root, 'nav': self.nav(root), 'banner': banner, 'footer': footer}}
        body, _ = self.ex.from_notebook_node(nb, resources=res)
        dest.write_text(body, encoding='utf-8'); self.pages.append(rel)

    def render_markdown(self, md: str, rel: str, title: str, path: Path, banner: str = ''):
        import nbformat
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(md)])
        self.render(nb, rel, title, path, banner)

    def write_static(self):
        from jupyter_core.paths import jupyter_path
        css = []
        for name in ('index.css', 'theme-light.css'):
            f = next((Path(p) for p in jupyter_path('nbconvert', 'templates', 'lab', 'static', name) if Path(p).is_file()), None)
            if f is None: raise FileNotFoundError(f"nbconvert's lab template has no static/{name}: is nbconvert>=7 installed?")
            css.append(f.read_text(encoding='utf-8'))
        (self.out/'static').mkdir(parents=True, exist_ok=True)
        (self.out/'static'/'nbconvert.css').write_text('\n'.join(css), encoding='utf-8')
        (self.out/'static'/'docs.css').write_text(DOCS_CSS, encoding='utf-8')

def note(text: str, error=False) -> str:
    return f'<div class="docs-note{" error" if error else ""}">{text}</div>\n'

def copy_report(outputs: Path, out: Path, nav: str) -> list[str]:
    "REPORT.html (with the docs' navigation added) and REPORT.md into `out/report/`, with every local file REPORT.html links to."
    import mistune
    dst = out/'report'; dst.mkdir(parents=True, exist_ok=True)
    md, page = outputs/'REPORT.md', outputs/'REPORT.html'
    if page.is_file(): text = page.read_text(encoding='utf-8')
    else:                                                        # only the markdown: render it as trustnas does
        body = mistune.create_markdown(plugins=['table', 'strikethrough', 'url'], escape=False)(md.read_text(encoding='utf-8'))
        text = f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>trustnas-nb — reproduction report</title></head><body>\n{body}\n</body></html>\n'
    if md.is_file(): shutil.copy2(md, dst/'REPORT.md')
    copied = []
    for ref in set(re.findall(r'(?:href|src)="([^"]+)"', text)):
        u = urlsplit(html.unescape(ref))
        if u.scheme or u.netloc or not u.path: continue
        f = (outputs/unquote(u.path)).resolve()
        if f.is_relative_to(outputs.resolve()) and f.is_file() and f.name not in ('REPORT.html', 'REPORT.md'):
            t = dst/f.relative_to(outputs.resolve()); t.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(f, t); copied.append(t)
    text = text.replace('</head>', '<link rel="stylesheet" href="../static/docs.css"></head>', 1)
    text = re.sub(r'(<body[^>]*>)', lambda m: m.group(1) + '\n' + nav, text, count=1)
    (dst/'REPORT.html').write_text(text, encoding='utf-8')
    return ['report/REPORT.html'] + (['report/REPORT.md'] if md.is_file() else [])

def _fig_cell(exp_dir: Path):
    "A markdown cell showing the figures a run wrote (listed in its manifest when it has one), embedded by the exporter."
    import nbformat
    figs = sorted((exp_dir/'figures').glob('*.png'))
    try:
        listed = set(json.loads((exp_dir/'manifest.json').read_text())['files'])
        figs = [f for f in figs if f.relative_to(exp_dir).as_posix() in listed]
    except (OSError, ValueError, KeyError): pass
    if not figs: return None
    return nbformat.v4.new_markdown_cell('## Figures written by this run\n\n' + '\n\n'.join(f'![{f.stem}](figures/{f.name})\n\n*{f.stem}*' for f in figs))

# ---------------------------------------------------------------- the build
def _linker(built: dict, outputs: Path, have_report: bool, out: Path):
    """Where a relative link of a notebook goes in the site: a notebook with a page -> its page; the report -> report/
    (else the repository's committed copy); any other file tracked by git -> that file in the repository on GitHub
    (pyproject's Repository URL; the README, made from index.ipynb, links relative to the repository root)."""
    repo = re.search(r'^Repository\s*=\s*"([^"]+)"', (ROOT/'pyproject.toml').read_text(encoding='utf-8'), re.M) if (ROOT/'pyproject.toml').is_file() else None
    repo = repo.group(1).rstrip('/') if repo else None
    try: tracked = set(subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split('\0')) - {''}
    except (OSError, subprocess.CalledProcessError): tracked = set()
    reports = {(d/n).resolve() for d in (Path(outputs), ROOT/'outputs') for n in ('REPORT.md', 'REPORT.html')}
    def link_for(target: Path):
        if target in built: return built[target]
        if target in reports: return 'report/REPORT.html' if have_report else (f'{repo}/blob/main/outputs/{target.name}' if repo else None)
        if repo and target.is_relative_to(ROOT) and not target.is_relative_to(Path(out).resolve()) and target.relative_to(ROOT).as_posix() in tracked:
            return f'{repo}/blob/main/{target.relative_to(ROOT).as_posix()}'
        return None
    return link_for

def _selected(name: str, only) -> bool:
    return not only or any(fnmatch.fnmatch(name, g) for g in only)

def build(out: Path, only=None, outputs: Path | None = None, scale='cpu', execute=False, jobs=2, cell_timeout=600,
          nbs: Path | None = None, lib: Path | None = None) -> int:
    t0 = time.perf_counter()
    nbs, lib = Path(nbs or ROOT/'nbs'), Path(lib or ROOT/'trustnas_nb')
    outputs = Path(outputs) if outputs else ROOT/'outputs'
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out/MARKER).is_file(): sys.exit(f'{out} exists, is not empty and was not built by make_docs.py (no {MARKER}): refusing to overwrite it; choose another --out')
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True); (out/MARKER).write_text('built by nbs/make_docs.py\n')

    chapters = [p for p in sorted(nbs.glob('*.ipynb')) if p.stem != 'index' and _selected(p.stem, only)]
    experiments = [p for p in sorted((nbs/'experiments').glob('*.ipynb')) if _selected(p.stem, only)]
    mods = [p for p in sorted(lib.glob('*.py')) if not p.stem.startswith('_')]
    apis = [a for a in map(module_api, mods) if _selected(a['name'], only) or (a['notebook'] and _selected(a['notebook'], only))]
    have_report = (outputs/'REPORT.html').is_file() or (outputs/'REPORT.md').is_file()
    built = {p.resolve(): f'{p.stem}.html' for p in chapters} | {p.resolve(): f'experiments/{p.stem}.html' for p in experiments}
    link_for = _linker(built, outputs, have_report, out)
    site, failed, toc = Site(out, have_report), [], {}
    site.write_static()

    executed, t_exec = {}, 0.0
    if execute and chapters:
        te = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix='make_docs_') as tmp: executed = execute_all(chapters, jobs, cell_timeout, Path(tmp))
        t_exec = time.perf_counter() - te
        slow = sorted(((s, p.stem) for p, (_, s, _) in executed.items()), reverse=True)[:5]
        print(f'executed {len(executed)} notebook(s) in {t_exec:.0f} s with {jobs} job(s); slowest: ' + ', '.join(f'{n} {s:.0f} s' for s, n in slow))

    visible = {}
    for p in chapters:
        src = read_nb(p)
        title, summary = title_summary(src, p.stem)
        banner = ''
        if execute:
            nb, secs, err = executed[p]
            if err:
                failed.append(p.name)
                banner = note(f'Executing this notebook for the documentation failed; the outputs below stop at the failing cell.<pre>{html.escape(err[-1500:])}</pre>', error=True)
            nb = nb if nb is not None else src
        else:
            nb = src
            banner = note('This page shows the notebook without outputs (nbdev-clean strips them; the site was built without <code>--execute</code>); '
                          'run it in JupyterLab to see them.')
        shown = for_display(nb, p.parent, link_for, '')
        visible[p.stem] = {c.get('id') for c in shown.cells if c.get('id')}
        site.render(shown, f'{p.stem}.html', title, p, banner)
        toc.setdefault(GROUPS.get(p.stem[0], 'Other notebooks'), []).append((f'{p.stem}.html', title, summary, ''))

    for p in experiments:
        src = read_nb(p); title, summary = title_summary(src, p.stem)
        exp_dir = outputs/scale/p.stem; ex_nb = exp_dir/'executed.ipynb'
        if ex_nb.is_file():
            nb = read_nb(ex_nb)
            try: run = json.loads((exp_dir/'run.json').read_text())
            except (OSError, ValueError): run = {}
            banner = note(f'Executed at <code>{html.escape(scale)}</code> scale by <code>trustnas reproduce</code>' +
                          (f' (status {html.escape(str(run.get("status")))}, {html.escape(str(run.get("seconds")))} s, commit '
                           f'<code>{html.escape(str(run.get("git_commit")))}</code>)' if run else '') +
                          f'; from <code>{html.escape(ex_nb.relative_to(outputs).as_posix() if ex_nb.is_relative_to(outputs) else str(ex_nb))}</code> '
                          'under the outputs directory. The tables and claims of all experiments are in the report.')
            fig = _fig_cell(exp_dir)
            if fig is not None: nb.cells.append(fig)
            state, path = f'executed at {scale} scale', ex_nb
        else:
            nb, path, state = src, p, 'not executed'
            banner = note(f'Not executed: there is no <code>{html.escape(scale)}/{p.stem}/executed.ipynb</code> under the outputs directory '
                          f'(<code>make reproduce</code> writes it), so this page shows the notebook as committed, without outputs.')
        site.render(for_display(nb, p.parent, link_for, 'experiments'), f'experiments/{p.stem}.html', title, path, banner)
        toc.setdefault('docs-experiments', []).append((f'experiments/{p.stem}.html', title, _short(summary), state))

    for a in apis:
        nb_page = f'../{a["notebook"]}.html' if a['notebook'] in visible else None
        site.render_markdown(api_markdown(a, nb_page, visible.get(a['notebook'], set())), f'api/{a["name"]}.html', f'{a["module"]} API',
                             lib/f'{a["name"]}.py')
    api_index = ['# API reference', '', 'One page per module of the package `trustnas_nb`, read from the exported sources '
                 '(the notebooks are the source of truth: each name links to the cell that defines it).', '']
    api_index += [f'- [`{a["module"]}`]({a["name"]}.html): {_short(plain(a["doc"].split(chr(10) + chr(10))[0]), 200)}' for a in apis] or ['*No module selected.*']
    site.render_markdown('\n'.join(api_index), 'api/index.html', 'API reference', lib)

    if have_report: site.pages += copy_report(outputs, out, site.nav('../'))

    idx = read_nb(nbs/'index.ipynb')
    import nbformat
    lines = ['<a id="docs-contents"></a>', '', '## Contents of this site', '']
    lines += ['<a id="docs-notebooks"></a>', '', '### Notebooks', '']
    for group in [g for g in list(GROUPS.values()) + ['Other notebooks'] if g in toc]:
        lines += [f'**{group}**', ''] + [f'- [{_md_escape(t)}]({h}): {s}' for h, t, s, _ in toc[group]] + ['']
    if not chapters: lines += ['*No notebook selected.*', '']
    lines += ['<a id="docs-experiments"></a>', '', '### Experiments', '',
              f'The parameterized notebooks of `nbs/experiments/`, executed at `{scale}` scale by `make reproduce` where their outputs are present.', '']
    lines += [f'- [{_md_escape(t)}]({h}) ({st}): {s}' for h, t, s, st in toc.get('docs-experiments', [])] or ['*No experiment notebook selected.*']
    lines += ['', '### Reference', '', '- [API reference](api/index.html): the public names of every module, with signatures and docstrings.']
    if have_report: lines += ['- [Reproduction report](report/REPORT.html): every reproduced table beside the thesis\' own, with the claims and verdicts.']
    idx.cells.append(nbformat.v4.new_markdown_cell('\n'.join(lines)))
    site.render(for_display(idx, nbs.parent, link_for, ''), 'index.html', title_summary(idx, 'trustnas-nb')[0], nbs/'index.ipynb')

    print(f'built {len(site.pages)} pages into {out} in {time.perf_counter() - t0:.0f} s '
          f'({len(chapters)} notebooks{" executed" if execute else ""}, {len(experiments)} experiments, {len(apis)} API modules'
          f'{", the report" if have_report else ""})')
    rc = report_links(out)
    if failed: print(f'{len(failed)} notebook(s) failed to execute: {", ".join(failed)}', file=sys.stderr)
    return 1 if (rc or failed) else 0

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=str(ROOT/'_docs'), help='the site folder (default: _docs, pyproject [tool.nbdev] doc_path)')
    p.add_argument('--only', help='build only the notebooks / experiment notebooks / modules whose name matches a glob (comma-separated)')
    p.add_argument('--outputs', help='the outputs directory holding <scale>/<experiment>/executed.ipynb and REPORT.* (default: outputs)')
    p.add_argument('--scale', default='cpu', help='which run of the experiments to show (default: cpu)')
    p.add_argument('--execute', action='store_true', help='run the notebooks of nbs/ first, so their pages show outputs (slow: minutes)')
    p.add_argument('--jobs', type=int, default=2, help='notebooks executed at once (default 2)')
    p.add_argument('--cell-timeout', type=int, default=600, help='seconds a cell may run (default 600)')
    p.add_argument('--check', action='store_true', help='only check the links of the site already in --out')
    p.add_argument('--nbs', help='the notebooks folder (default: nbs; for tests)')
    p.add_argument('--lib', help='the package folder whose modules get API pages (default: trustnas_nb; for tests)')
    p.add_argument('--exec-one', nargs=2, metavar=('SRC', 'DST'), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.exec_one: return _exec_one(*a.exec_one, a.cell_timeout)
    if a.jobs < 1: p.error(f'--jobs must be a positive integer, not {a.jobs}')
    if a.check:
        try: return report_links(Path(a.out))
        except FileNotFoundError as e: sys.exit(str(e))
    only = [g.strip() for g in a.only.split(',') if g.strip()] if a.only else None
    return build(Path(a.out), only, Path(a.outputs) if a.outputs else None, a.scale, a.execute, a.jobs, a.cell_timeout,
                 Path(a.nbs) if a.nbs else None, Path(a.lib) if a.lib else None)

if __name__ == '__main__':
    sys.exit(main())

"""The package's shape: every module under task_diag/ on disk is imported
by its path, the imports between them form no cycle, and an import inside
a function says why on its line (an optional dependency, a measured
start-up cost)."""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'task_diag')


def modules():
    """{dotted name: path} of every module of the package."""
    out = {}
    for d, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith('.py'):
                rel = os.path.relpath(os.path.join(d, f), ROOT)[:-3].split(os.sep)
                if rel[-1] == '__init__':
                    rel = rel[:-1]
                out['.'.join(rel)] = os.path.join(d, f)
    return out


def imports(name, path, known):
    """[(module imported, line, inside a function)] of the package's own
    modules that @name imports."""
    tree = ast.parse(open(path).read(), path)
    package = name if path.endswith('__init__.py') else name.rsplit('.', 1)[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name in known:
                        found.append((a.name, child.lineno, in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split('.')
                    base = base[:len(base) - child.level + 1]
                    mod = '.'.join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module
                for a in child.names:
                    full = mod + '.' + a.name
                    target = full if full in known else mod
                    if target in known:
                        found.append((target, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def test_no_package_dir_remapping():
    with open(os.path.join(ROOT, 'pyproject.toml')) as f:
        text = f.read()
    assert 'package-dir' not in text
    # and nothing importable outside task_diag/ but the tests and bench
    top = [n for n in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, n, '__init__.py'))]
    assert top == ['task_diag']


def test_no_import_cycle():
    known = modules()
    graph = {name: {m for m, _, _ in imports(name, path, known) if m != name}
             for name, path in known.items()}
    # a package's __init__ runs before its modules: an import of the package
    # by one of its own modules is an edge too, and a cycle through it real
    seen, stack, cycles = set(), [], []

    def walk(n):
        if n in stack:
            cycles.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for m in sorted(graph[n]):
            walk(m)
        stack.pop()

    for n in sorted(graph):
        walk(n)
    assert not cycles, cycles


def test_imports_inside_functions_say_why():
    known = modules()
    unexplained = []
    for name, path in sorted(known.items()):
        lines = open(path).read().split('\n')
        for mod, line, in_function in imports(name, path, known):
            if in_function and not re.search(r'#\s*\S', lines[line - 1]):
                unexplained.append('%s:%d imports %s' % (os.path.relpath(path, ROOT), line, mod))
    assert not unexplained, unexplained


def test_no_test_module_imports_another():
    """Tests share helpers (tests/helpers/) and fixtures (conftest.py), never
    each other's modules."""
    found = []
    for d, _, files in os.walk(os.path.join(ROOT, 'tests')):
        for f in files:
            if not f.endswith('.py'):
                continue
            path = os.path.join(d, f)
            for node in ast.walk(ast.parse(open(path).read(), path)):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module]
                for n in names:
                    if n.split('.')[0].startswith(('test_', 'conftest')):
                        found.append('%s:%d imports %s' % (os.path.relpath(path, ROOT),
                                                           node.lineno, n))
    assert not found, found

"""The texts client tools hash an operation as, byte for byte, so the registry can key it the same way.

- Printed: graphql-js `print(document)`, what Apollo Client's persisted-query link hashes
  (when it adds no `__typename`). graphql-js 17 prints an object value as `{ a: 1 }` and
  wraps a list past 80 characters; 16 prints `{a: 1}` and never wraps. graphql-core 3.3's
  `print_ast` prints as 17; the 16 form changes those two rules only. Both are kept: clients
  run either major.
- Stable: graphql-codegen's client preset (`persistedDocuments`) hashes
  `printExecutableGraphQLDocument` of `@graphql-tools/documents`: the document sorted
  (fragments before operations, variables, selections and directive arguments by name; a
  mutation's root fields keep their order, as they run in it), printed, and its whitespace
  squeezed to single spaces.

tests/test_printed_forms.py compares both with graphql-js itself where node is installed.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, TypeVar

from graphql import DocumentNode, print_ast
from graphql.language import ast
from graphql.language.printer import join, print_doc_ast_reducer, render
from graphql.language.reducer import reduce

NodeT = TypeVar("NodeT", bound=ast.Node)

# JavaScript's `\s`: what `str.replace(/\s+/g, ' ').trim()` squeezes (Python's `\s` differs).
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_SPACES = re.compile(f"[{_JS_SPACE}]+")
_JS_KIND = {"operation_definition": "OperationDefinition", "fragment_definition": "FragmentDefinition"}

_GRAPHQL_JS_16 = {
    **print_doc_ast_reducer,
    "list_value": lambda node: join(("[", join(node.values, ", "), "]")),
    "object_value": lambda node: join(("{", join(node.fields, ", "), "}")),
}


def print_graphql_js_16(document: ast.Node) -> str:
    return render(reduce(document, _GRAPHQL_JS_16), 1 << 30)


PRINTERS = {"graphql-js 17": print_ast, "graphql-js 16": print_graphql_js_16}


def printed_forms(document: DocumentNode) -> dict[str, str]:
    """{text: which form} for every text a supported client tool may hash this document as.

    Two texts for most operations; four when a literal object or long list prints differently.
    """
    forms: dict[str, str] = {}
    for version, printer in PRINTERS.items():
        forms.setdefault(printer(document), f"{version} print")
        forms.setdefault(stable_print(document, printer), f"{version} stable print (graphql-codegen)")
    return forms


def stable_print(document: DocumentNode, printer: Any = print_ast) -> str:
    """@graphql-tools/documents' `printExecutableGraphQLDocument`, with `printer` as its graphql-js `print`."""
    return _squeeze(printer(_sorted_document(document, printer)))


def _squeeze(text: str) -> str:
    return _JS_SPACES.sub(" ", text).strip(" ")  # every run of space is one " " by then: trim() is strip(" ")


def _js_order(key: str | None) -> tuple[bool, bytes]:
    """JavaScript's `<` on strings (UTF-16 code units), a missing key last."""
    return (key is None, (key or "").encode("utf-16-be"))


def _sorted_document(document: DocumentNode, printer: Any) -> DocumentNode:
    # Fragments sort before operations, so the original's "fragments spread at a mutation's root
    # stay unsorted" never applies: it records them only after visiting the fragments.
    definitions = sorted(document.definitions,
                         key=lambda d: (_js_order(_JS_KIND.get(d.kind, d.kind)),
                                        _js_order(d.name.value if d.name else None)))
    return _with(document, definitions=tuple(_sorted_definition(d, printer) for d in definitions))


def _sorted_definition(node: ast.ExecutableDefinitionNode, printer: Any) -> ast.ExecutableDefinitionNode:
    variables = _by_name(node.variable_definitions or (), lambda v: v.variable.name.value)
    variables = tuple(_sorted_directives_args(v) for v in variables)
    if isinstance(node, ast.OperationDefinitionNode):
        keep_order = node.operation == ast.OperationType.MUTATION
        return _with(node, variable_definitions=variables,
                     directives=_directives(node.directives, sort=False),
                     selection_set=_sorted_selection_set(node.selection_set, printer, keep_order))
    return _with(node, variable_definitions=variables, directives=_directives(node.directives, sort=True),
                 selection_set=_sorted_selection_set(node.selection_set, printer, False))


def _sorted_selection_set(node: ast.SelectionSetNode, printer: Any, keep_order: bool) -> ast.SelectionSetNode:
    selections = node.selections if keep_order else _sorted_selections(node.selections, printer)
    return _with(node, selections=tuple(_sorted_selection(s, printer, keep_order) for s in selections))


def _sorted_selection(node: ast.SelectionNode, printer: Any, in_kept_order: bool) -> ast.SelectionNode:
    if isinstance(node, ast.FieldNode):
        selection_set = node.selection_set and _sorted_selection_set(node.selection_set, printer, False)
        return _with(node, directives=_directives(node.directives, sort=False), selection_set=selection_set)
    if isinstance(node, ast.FragmentSpreadNode):
        return _with(node, directives=_directives(node.directives, sort=not in_kept_order))
    assert isinstance(node, ast.InlineFragmentNode)
    return _with(node, directives=_directives(node.directives, sort=not in_kept_order),
                 selection_set=_sorted_selection_set(node.selection_set, printer, in_kept_order))


def _sorted_selections(selections: Any, printer: Any) -> tuple[ast.SelectionNode, ...]:
    def key(node: ast.SelectionNode) -> str:
        if isinstance(node, ast.FieldNode):
            return "0" + node.name.value
        if isinstance(node, ast.FragmentSpreadNode):
            return "1" + node.name.value
        assert isinstance(node, ast.InlineFragmentNode)
        inner = _sorted_selections(node.selection_set.selections, printer)  # one level, as the original
        condition = node.type_condition.name.value if node.type_condition else ""
        return "2" + condition + _squeeze(" ".join(printer(n) for n in inner))
    return tuple(sorted(selections, key=lambda n: _js_order(key(n))))


def _directives(directives: Any, *, sort: bool) -> tuple[ast.DirectiveNode, ...]:
    """Every directive's arguments are sorted; the directives themselves only where the original sorts them."""
    found = _by_name(directives or (), lambda d: d.name.value) if sort else tuple(directives or ())
    return tuple(_with(d, arguments=_by_name(d.arguments or (), lambda a: a.name.value)) for d in found)


def _sorted_directives_args(node: NodeT) -> NodeT:
    return _with(node, directives=_directives(getattr(node, "directives", None), sort=False))


def _by_name(nodes: Any, name: Any) -> tuple[Any, ...]:
    return tuple(sorted(nodes, key=lambda n: _js_order(name(n))))


def _with(node: NodeT, **changes: Any) -> NodeT:
    return replace(node, **changes)  # graphql-core's nodes are frozen dataclasses

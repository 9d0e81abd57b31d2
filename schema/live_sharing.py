"""Which documents a live event's subscribers may share an answer to.

The transport executes an organization's event once for the subscribers whose answers must
be equal (gateway/live_answers.py): the same document, operation and variables, and the same
rights (`resolvers.live.rights_for`, which covers what statements and the access table read of
the viewer). A few fields read the viewer's own identity in Python besides: a document that
selects one of them is answered for each subscriber alone.
"""

from __future__ import annotations

from graphql import GraphQLSchema, TypeInfo, TypeInfoVisitor, Visitor, visit
from graphql.language import FieldNode

from schema.documents import Document

# Every field whose resolver reads `ctx.viewer` beyond its kinds and reach (found by reading
# schema/ and resolvers/ for `viewer`): the role itself, not its kind (OWNER and ADMIN are both
# managers); what the viewer's own seats let it download; its session; a staff role or
# service's own name and scopes (only under `Query.staff` today, listed all the same).
VIEWER_FIELDS = frozenset({
    "Organization.viewerRole",
    "Product.canDownload", "Product.downloads",
    "SessionEndedEvent.thisSession",
    "Staff.role", "Staff.service", "Staff.scopes",
    "Query.viewer",
})


class _Selected(Visitor):
    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.found = False

    def enter_field(self, node: FieldNode, *_args: object) -> object:
        parent = self.type_info.get_parent_type()
        if parent is not None and f"{parent.name}.{node.name.value}" in VIEWER_FIELDS:
            self.found = True
            return self.BREAK
        return None


def reads_viewer(schema: GraphQLSchema, document: Document) -> bool:
    """Whether any operation or fragment of the (valid) document selects a field of
    VIEWER_FIELDS; computed once per text."""
    return document.derived(_Reads(schema))


class _Reads:
    """`Document.derived` keys on the function: one per schema, equal for the same schema."""

    __slots__ = ("schema",)

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema

    def __hash__(self) -> int:
        return id(self.schema)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reads) and other.schema is self.schema

    def __call__(self, document: Document) -> bool:
        assert document.node is not None
        type_info = TypeInfo(self.schema)
        selected = _Selected(type_info)
        visit(document.node, TypeInfoVisitor(type_info, selected))
        return selected.found

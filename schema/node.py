"""Object identification: `node(id:)` and `nodes(ids:)` over every type with an ID."""

from __future__ import annotations

import asyncio

import strawberry
from strawberry import relay

from datasources.errors import BadUserInput
from schema import account, billing, credits, license, organization, product, subscription
from schema.common import Info, global_id_of

MAX_NODES = 100
# Every type that implements Node, by name: `node(id:)` dispatches on the type named in the ID.
NODE_TYPES: dict[str, type[relay.Node]] = {
    cls.__name__: cls
    for module in (account, organization, license, subscription, product, credits, billing)
    for cls in module.NODE_TYPES
}


async def resolve_node(info: Info, id: strawberry.ID) -> relay.Node | None:
    global_id = global_id_of(id)
    node_type = NODE_TYPES.get(global_id.type_name) if global_id else None
    if global_id is None or node_type is None:
        return None
    [found] = await node_type.resolve_nodes(info=info, node_ids=[global_id.node_id])
    return found


async def resolve_nodes(info: Info, ids: list[strawberry.ID]) -> list[relay.Node | None]:
    if len(ids) > MAX_NODES:
        raise BadUserInput(f"nodes(ids:) takes at most {MAX_NODES} IDs.")
    return list(await asyncio.gather(*(resolve_node(info, i) for i in ids)))

"""Products with their downloads and learning resources (the Products, Downloads and Learning menus)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from enum import Enum
from uuid import UUID

import strawberry
from strawberry import relay

from datasources.postgres import entitlements as records
from planning.declare import column, from_record, table
from resolvers import entitlements as resolve
from schema.common import Info, by_uuid, resolve_visible


@strawberry.enum(description="Operating system a download is built for.")
class Platform(Enum):
    WINDOWS = strawberry.enum_value("WINDOWS", description="Microsoft Windows.")
    MACOS = strawberry.enum_value("MACOS", description="Apple macOS.")
    LINUX = strawberry.enum_value("LINUX", description="Linux.")


@strawberry.enum(description="What kind of learning resource it is.")
class LearningResourceKind(Enum):
    VIDEO = strawberry.enum_value("VIDEO", description="A training video.")
    SAMPLE_PROJECT = strawberry.enum_value("SAMPLE_PROJECT", description="A sample project to open.")
    DOCS = strawberry.enum_value("DOCS", description="The product documentation.")
    KNOWLEDGE_BASE = strawberry.enum_value("KNOWLEDGE_BASE", description="Knowledge base articles.")


@strawberry.type(description="An installer of one version of a product for one platform.")
class Download(relay.Node):
    id: relay.NodeID[str]
    version: str = strawberry.field(description="Product version, e.g. \"7.0.2\".")
    platform: Platform = strawberry.field(description="Operating system it installs on.")
    url: str = strawberry.field(description="Where to download the installer.")
    size_bytes: int = strawberry.field(description="Size of the installer in bytes.")
    sha256: str = strawberry.field(description="SHA-256 checksum of the installer, hex.")
    released_on: date = strawberry.field(description="Release date.")

    @classmethod
    def from_record(cls, d: records.Download) -> "Download":
        return cls(id=str(d.id), version=d.version, platform=Platform(d.platform), url=d.url,
                   size_bytes=d.size_bytes, sha256=d.sha256, released_on=d.released_on)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_download), cls.from_record, info, node_ids)


@strawberry.type(description="A training video, sample project, documentation or knowledge base link.")
class LearningResource(relay.Node):
    id: relay.NodeID[str]
    kind: LearningResourceKind = strawberry.field(description="What kind of resource it is.")
    title: str = strawberry.field(description="Title to show.")
    url: str = strawberry.field(description="Where it lives.")

    @classmethod
    def from_record(cls, r: records.LearningResource) -> "LearningResource":
        return cls(id=str(r.id), kind=LearningResourceKind(r.kind), title=r.title, url=r.url)

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_learning_resource), cls.from_record, info, node_ids)


@table("products")
@strawberry.type(description="A product of the vendor's catalog.")
class Product(relay.Node):
    id: relay.NodeID[str]
    sku: str = column("sku", description="Stock-keeping unit, stable across renames.")
    name: str = column("name", description="Product name.")
    family: str = column("family", description="Product family, e.g. \"Lumen\"; subscriptions filter by it.")
    description: str = column("description", description="One-sentence description.")

    @classmethod
    def from_record(cls, p: records.Product) -> "Product":
        return from_record(cls, p)

    @strawberry.field(description="Whether the viewer may download it: they hold a seat of an unexpired "
                                  "license of it, or their organization has an unexpired floating license.")
    async def can_download(self, info: Info) -> bool:
        return await resolve.may_download(info.context, UUID(self.id))

    @strawberry.field(description="Installers, newest first; empty unless `canDownload`.")
    async def downloads(self, info: Info) -> list[Download]:
        return [Download.from_record(d) for d in await resolve.downloads(info.context, UUID(self.id))]

    @strawberry.field(description="Videos, sample projects, docs and knowledge base links.")
    async def learning_resources(self, info: Info) -> list[LearningResource]:
        found = await resolve.learning_resources(info.context, UUID(self.id))
        return [LearningResource.from_record(r) for r in found]

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False):
        return await resolve_visible(by_uuid(resolve.visible_product), cls.from_record, info, node_ids)


async def product(info: Info, product_id: UUID) -> Product:
    [found] = await products(info, [product_id])
    return found


async def products(info: Info, product_ids: Sequence[UUID]) -> list[Product]:
    found = await resolve.products(info.context, product_ids)
    assert None not in found, "licenses and subscriptions reference existing products"
    made = {p.id: Product.from_record(p) for p in found}  # a few products, referenced by every license
    return [made[p.id] for p in found]


NODE_TYPES = (Product, Download, LearningResource)

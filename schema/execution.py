"""Queries executed level by level: each field resolved once for every object that has it.

graphql-core completes a result object by object and field by field, and an async
resolver costs it an asyncio task of its own: for the dashboard, thousands of tasks and
calls per request, which profiles as nearly all of its time. This executor walks the
same validated operation one selection set at a time, over every object at that level
together: a plain attribute is read in a list comprehension, a resolver is called once
per object with one shared `info`, and the coroutines of a level are stepped by hand
instead of becoming tasks, so the loaders still see every key of the level in one round.

It handles only the happy path. An error anywhere (a resolver raising, a null where the
schema forbids one, a value of the wrong type) hands the whole operation to graphql-core's
own execution, which reports it with its path exactly as it always has. Only queries come
here, so running the operation again changes nothing. The second run reads PostgreSQL
afresh (what was primed before the first, the session's rows, stays), so that graphql-core
answers exactly as it does alone, errors and their order
included; the payment provider's answers (failures included, see `loaders.dataloader`)
are kept, so a slow provider is waited for once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from operator import attrgetter
from typing import Any

from graphql import (GraphQLAbstractType, GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLOutputType,
                     GraphQLSchema, OperationType, is_abstract_type, is_leaf_type, is_object_type)
from graphql.execution.collect_fields import FieldDetails, collect_fields
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined
from strawberry import relay
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

from datasources.instrumentation import record_executor
from planning import levels, plan as projection
from planning.ids import global_id
from schema.asyncio_internals import as_a_task_would

Column = list[Any]
log = logging.getLogger(__name__)


class Fallback(Exception):
    """This operation takes graphql-core's path."""


class LevelExecutor(StrawberryGraphQLCoreExecutionContext):
    # Off in schema.ReferenceExecution: graphql-core alone, what the tests compare this executor with.
    enabled = True

    def execute_operation(self, serially: bool | None = None) -> Any:
        if not self.enabled or self.operation.operation is not OperationType.QUERY or _has_middleware(self):
            record_executor("graphql-core")
            return super().execute_operation(serially)
        return self._by_level(serially)

    def build_response(self, data: dict[str, Any] | None) -> Any:
        response = super().build_response(data)
        # The executor refers to itself through its resolve-info helpers (bound methods of its
        # own), a cycle that only the cyclic collector frees, and with it everything the
        # request held (context, loaders, rows, plans): 120 objects a members page, 22 us of
        # collection each. The response is built: no resolve info is made after it, and a
        # resolver still settling in the background keeps the helpers it was given.
        self.async_helpers = None  # type: ignore[assignment]
        return response

    async def _by_level(self, serially: bool | None) -> Any:
        loaders = self.context_value.loaders
        mark = loaders.database_mark()
        try:
            data = await self._root()
        except Exception:  # noqa: BLE001 - anything at all: graphql-core reports it properly
            log.debug("answered by graphql-core", exc_info=True)
            record_executor("graphql-core")
            # With the attempt's reads cached, graphql-core's resolvers would finish in another
            # order than on a first execution, and it would list other errors, or the same in
            # another order, than it does alone (tests/test_paths_agree.py).
            loaders.forget_database_reads_since(mark)
            result = super().execute_operation(serially)
            return await result if self.is_awaitable(result) else result
        record_executor("levels")
        return self.finish(self.build_response(data))

    async def _root(self) -> dict[str, Any]:
        root_type = self.schema.query_type
        assert root_type is not None
        grouped = collect_fields(self.schema, self.fragments, self.variable_values, root_type, self.operation,
                                 self.hide_suggestions).grouped_field_set
        [data] = await self._objects(root_type, grouped, [self.root_value], None)
        return data

    async def _objects(self, parent_type: GraphQLObjectType, grouped: dict[str, list[FieldDetails]],
                       sources: list[Any], path: Path | None) -> list[dict[str, Any]]:
        """The result objects for `sources`, all of type `parent_type`, in order."""
        keys: list[str] = []
        completions: list[Column | Awaitable[Column]] = []
        try:
            for key, details in grouped.items():
                keys.append(key)
                completions.append(self._field(parent_type, key, details, sources, path))
        except Exception:
            # The fields started so far run to their end: nothing left half-run behind the fallback.
            await asyncio.gather(*(c for c in completions if not isinstance(c, list)), return_exceptions=True)
            raise
        waits = [(completions, i, c) for i, c in enumerate(completions) if not isinstance(c, list)]
        if waits:
            # Stepped like resolvers (see `_settle`), not made into tasks; every sibling still
            # runs to its end before an error is raised, so nothing keeps reading in the
            # background while graphql-core runs the operation again.
            await _settle(waits)
        return [dict(zip(keys, row)) for row in zip(*completions)] if keys else [{} for _ in sources]

    def _field(self, parent_type: GraphQLObjectType, key: str, details: list[FieldDetails], sources: list[Any],
               path: Path | None) -> Column | Awaitable[Column]:
        """One field's completed values for every source; a coroutine while anything is awaited.

        Each field goes on to its own selections as soon as its values are in, not when its
        siblings' are: a sibling that needs more rounds must not hold the others' subtrees back
        (that would add rounds, and their number would depend on the data)."""
        name = details[0].node.name.value
        if name == "__typename":
            return [parent_type.name] * len(sources)
        field_def = parent_type.fields.get(name) or self.schema.get_field(parent_type, name)
        if field_def is None:
            raise Fallback(name)
        field_path = Path(path, key, parent_type.name)
        info = self.build_resolve_info(field_def, [d.node for d in details], parent_type, field_path)
        resolve = field_def.resolve or self.field_resolver
        getter = _attribute_getter(self.schema, field_def)
        if getter is not None:
            return self._complete(field_def.type, details, info, [getter(source) for source in sources], field_path)
        field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        if _is_node_id(field):
            return _global_ids(parent_type.name, sources)
        build = projection.projection(self, parent_type, name, field_def, details, info)
        if build is not None:
            return self._projected(build, sources, lambda: self._resolved(field_def, field, details, info, sources,
                                                                          field_path, resolve))
        return self._resolved(field_def, field, details, info, sources, field_path, resolve)

    def _resolved(self, field_def: Any, field: Any, details: list[FieldDetails], info: Any, sources: list[Any],
                  field_path: Path, resolve: Any) -> Column | Awaitable[Column]:
        """The field from its resolvers: a level form, a direct call, or strawberry's own wrapper."""
        level = self._level_call(field, info)
        if level is not None:
            return self._after(level(sources), field_def.type, details, info, field_path)
        direct = self._direct_call(field, info)
        if direct is not None:
            column = [direct(source) for source in sources]
        else:
            node = details[0].node
            args = (get_argument_values(field_def, node, self.variable_values, details[0].fragment_variable_values,
                                        self.hide_suggestions)
                    if field_def.args or node.arguments else {})
            column = [resolve(source, info, **args) for source in sources]
        is_awaitable = self.is_awaitable
        pending = [(column, i, value) for i, value in enumerate(column) if is_awaitable(value)]
        if not pending:
            return self._complete(field_def.type, details, info, column, field_path)

        async def settled() -> Column:
            await _settle(pending)
            completed = self._complete(field_def.type, details, info, column, field_path)
            return completed if isinstance(completed, list) else await completed

        return settled()

    async def _projected(self, build: projection.Build, sources: list[Any],
                         otherwise: Callable[[], Column | Awaitable[Column]]) -> Column:
        """The field's whole subtree from one statement, already completed; from the resolvers
        when the viewer's rights leave it to them."""
        try:
            values = await build(sources)
        except Exception as exc:
            raise Fallback("a projection failed") from exc
        if values is None:
            resolved = otherwise()
            return resolved if isinstance(resolved, list) else await resolved
        return values

    def _after(self, values: Column | Awaitable[Column], type_: GraphQLOutputType, details: list[FieldDetails],
               info: Any, path: Path) -> Column | Awaitable[Column]:
        if isinstance(values, list):
            return self._complete(type_, details, info, values, path)

        async def settled() -> Column:
            try:
                column = await values  # type: ignore[misc]
            except Exception as exc:
                raise Fallback("a level resolver raised") from exc
            completed = self._complete(type_, details, info, column, path)
            return completed if isinstance(completed, list) else await completed

        return settled()

    def _level_call(self, field: Any, info: Any) -> Callable[[Column], Column | Awaitable[Column]] | None:
        """A resolver's whole-level form (`planning.levels`): one call answers every object of the
        level, so the loaders are asked once for all their keys rather than once per object."""
        if not _plain_resolver(field):
            return None
        level = levels.level_resolver_of(field.base_resolver.wrapped_func)
        strawberry_info = self._strawberry_info(field, info) if level is not None else None
        if strawberry_info is None:
            return None
        return lambda sources: level(sources, strawberry_info)

    def _direct_call(self, field: Any, info: Any) -> Callable[[Any], Any] | None:
        """A resolver called without strawberry's wrapper, which converts arguments and runs field
        extensions around every call: for a resolver that has neither, all it does is pass `self`
        and an `Info`, made here once for the whole level."""
        if not _plain_resolver(field):
            return None
        resolver = field.base_resolver
        if resolver.parent_parameter or resolver.root_parameter:
            return None
        function = resolver.wrapped_func
        kwargs = {}
        if resolver.info_parameter:
            strawberry_info = self._strawberry_info(field, info)
            if strawberry_info is None:
                return None
            kwargs[resolver.info_parameter.name] = strawberry_info
        if resolver.self_parameter:
            return lambda source: function(source, **kwargs)
        return lambda source: function(**kwargs)

    def _strawberry_info(self, field: Any, info: Any) -> Any:
        """The `Info` strawberry would pass, made as strawberry makes it (tests/test_strawberry_internals.py);
        None where strawberry's wrapper must run (an exception handler configured on the schema)."""
        strawberry_schema = strawberry_schema_of(self.schema)
        if strawberry_schema is None or strawberry_schema.exception_handlers:
            return None
        return strawberry_schema.config.info_class(_raw_info=info, _field=field)

    def _complete(self, type_: GraphQLOutputType, details: list[FieldDetails], info: Any, values: Column,
                  path: Path) -> Column | Awaitable[Column]:
        """Completed values of one field for every object of a level; a coroutine when the
        values have selections of their own."""
        if isinstance(type_, GraphQLNonNull):
            if None in values:
                raise Fallback("null in a non-null position")
            return self._complete(type_.of_type, details, info, values, path)
        present = [i for i, value in enumerate(values) if value is not None]
        if len(present) < len(values):
            completed = self._complete(type_, details, info, [values[i] for i in present], path)
            return _spread(completed, present, len(values))
        if is_leaf_type(type_):
            return _leaves(type_, values)
        if isinstance(type_, GraphQLList):
            return self._complete_list(type_, details, info, values, path)
        if is_object_type(type_):
            return self._complete_objects(type_, details, info, values, path)  # type: ignore[arg-type]
        if is_abstract_type(type_):
            return self._complete_abstract(type_, details, info, values, path)  # type: ignore[arg-type]
        raise Fallback(str(type_))

    def _complete_list(self, type_: GraphQLList, details: list[FieldDetails], info: Any, values: Column,
                       path: Path) -> Column | Awaitable[Column]:
        flat: Column = []
        lengths = []
        for value in values:
            if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
                raise Fallback("a list field returned a non-list")
            items = list(value)
            flat.extend(items)
            lengths.append(len(items))
        completed = self._complete(type_.of_type, details, info, flat, path)
        if isinstance(completed, list):
            return _split(completed, lengths)

        async def split() -> Column:
            return _split(await completed, lengths)  # type: ignore[misc]

        return split()

    async def _complete_objects(self, type_: GraphQLObjectType, details: list[FieldDetails], info: Any,
                                values: Column, path: Path) -> Column:
        if type_.is_type_of is not None:
            for value in values:
                if self.is_awaitable(checked := type_.is_type_of(value, info)) or not checked:
                    raise Fallback(f"not a {type_.name}")
        grouped = self.collect_subfields(type_, details).grouped_field_set
        return await self._objects(type_, grouped, values, path)

    async def _complete_abstract(self, type_: GraphQLAbstractType, details: list[FieldDetails], info: Any,
                                 values: Column, path: Path) -> Column:
        resolve_type = type_.resolve_type or self.type_resolver
        by_type: dict[str, tuple[GraphQLObjectType, list[int]]] = {}
        for i, value in enumerate(values):
            name = resolve_type(value, info, type_)
            if self.is_awaitable(name):
                if asyncio.iscoroutine(name):
                    name.close()
                raise Fallback("an asynchronous type resolver")
            runtime = self.ensure_valid_runtime_type(name, type_, details, info, value)
            by_type.setdefault(runtime.name, (runtime, []))[1].append(i)
        out: Column = [None] * len(values)
        for runtime, indices in by_type.values():
            completed = await self._complete_objects(runtime, details, info, [values[i] for i in indices], path)
            for i, result in zip(indices, completed):
                out[i] = result
        return out


# Scalars whose output is the Python value itself when it has this exact type.
_AS_IS = {"String": str, "ID": str, "Boolean": bool, "Int": int}
_INT_RANGE = range(-2**31, 2**31)
_ENUM_NAMES: dict[Any, dict[Any, str]] = {}


def _leaves(type_: Any, values: Column) -> Column:
    """Serialized scalars and enums; graphql-core's own coercion for anything unusual."""
    same = _AS_IS.get(type_.name)
    if same is not None and all(type(value) is same for value in values) \
            and (same is not int or all(value in _INT_RANGE for value in values)):
        return values
    wrapped = getattr(type_, "wrapped_cls", None)  # a strawberry enum: its serialize scans every value
    if wrapped is not None and all(type(value) is wrapped for value in values):
        names = _ENUM_NAMES.get(type_)
        if names is None:
            names = _ENUM_NAMES[type_] = {}
            for name, value in type_.values.items():
                names.setdefault(value.value, name)
        try:
            return [names[value.value] for value in values]
        except KeyError:
            raise Fallback("an enum value outside the schema") from None
    coerce = type_.coerce_output_value
    out = [coerce(value) for value in values]
    if None in out or Undefined in out:
        raise Fallback("a leaf that does not serialize")
    return out


def _plain_resolver(field: Any) -> bool:
    """A strawberry resolver without arguments or field extensions."""
    return field is not None and field.base_resolver is not None and not field.extensions and not field.arguments


def _is_node_id(field: Any) -> bool:
    """relay.Node's own `id`, which no type here overrides (`resolve_id`, `resolve_typename`)."""
    return field is not None and field.origin is relay.Node and field.python_name == "_id"


_ID_ATTRIBUTES: dict[type, str] = {}


def _global_ids(type_name: str, sources: Column) -> Column:
    """What strawberry's GlobalID serializes to, without a resolver call per object."""
    out = []
    for source in sources:
        cls = type(source)
        attribute = _ID_ATTRIBUTES.get(cls)
        if attribute is None:
            if not isinstance(source, relay.Node) or cls.resolve_id.__func__ is not relay.Node.resolve_id.__func__ \
                    or cls.resolve_typename.__func__ is not relay.Node.resolve_typename.__func__:
                raise Fallback(f"{cls.__name__} resolves its own id")
            attribute = _ID_ATTRIBUTES[cls] = cls.resolve_id_attr()
        node_id = getattr(source, attribute)
        if node_id is None:
            raise Fallback("a node without an id")
        out.append(global_id(type_name, node_id))
    return out


def _attribute_getter(schema: GraphQLSchema, field_def: Any) -> Any:
    """For strawberry's plain data fields (no resolver, no extension, no exception handler that
    could apply): read the attribute, as strawberry's own resolver for them does."""
    field = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if field is None or not field.is_basic_field or field.default_resolver is not getattr:
        return None
    strawberry_schema = strawberry_schema_of(schema)
    if strawberry_schema is None or strawberry_schema.exception_handlers:
        return None
    return attrgetter(field.python_name)


def _spread(completed: Column | Awaitable[Column], present: list[int], size: int) -> Column | Awaitable[Column]:
    def place(values: Column) -> Column:
        out: Column = [None] * size
        for i, value in zip(present, values):
            out[i] = value
        return out

    if isinstance(completed, list):
        return place(completed)

    async def later() -> Column:
        return place(await completed)  # type: ignore[misc]

    return later()


def _split(flat: Column, lengths: list[int]) -> Column:
    out, start = [], 0
    for length in lengths:
        out.append(flat[start:start + length])
        start += length
    return out


async def _settle(pending: list[tuple[Column, int, Awaitable[Any]]]) -> None:
    """Runs the resolvers' coroutines of one level to their ends, writing each result into
    its column.

    They are stepped here rather than wrapped in tasks: a step runs a coroutine until it
    waits on a future (a loader's, typically); once all the futures of the level are done
    (the batcher dispatching every loader in one round), each coroutine takes its next step.
    """
    error: BaseException | None = None
    steps: list[tuple[Column, int, Any, Any]] = []  # column, index, coroutine (None: a bare future), awaited

    def step(column: Column, i: int, coroutine: Any) -> None:
        nonlocal error
        try:
            awaited = coroutine.send(None)
        except StopIteration as stop:
            column[i] = stop.value
        except Exception as exc:  # noqa: BLE001 - raised once the level is over
            error = error or exc
        else:
            if awaited is not None:
                as_a_task_would(awaited)  # another coroutine may await the same future
            steps.append((column, i, coroutine, awaited))

    for column, i, awaitable in pending:
        if asyncio.isfuture(awaitable):
            steps.append((column, i, None, awaitable))
        elif asyncio.iscoroutine(awaitable):
            step(column, i, awaitable)
        else:
            steps.append((column, i, awaitable.__await__(), None))
    while steps:
        futures = {awaited for *_, awaited in steps if awaited is not None and not awaited.done()}
        if futures:
            await asyncio.wait(futures)
        else:
            await asyncio.sleep(0)  # a bare `yield` (asyncio.sleep(0) inside a resolver)
        current, steps = steps, []
        for column, i, coroutine, awaited in current:
            if coroutine is None:
                if awaited.exception() is not None:
                    error = error or awaited.exception()
                else:
                    column[i] = awaited.result()
                continue
            step(column, i, coroutine)
    if error is not None:
        raise Fallback("a resolver raised") from error


def strawberry_schema_of(schema: GraphQLSchema) -> Any:
    """The strawberry schema a graphql-core schema was built from: strawberry leaves it among
    the schema's extensions, under the same key as every type's and field's definition."""
    return schema.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)


def _has_middleware(executor: LevelExecutor) -> bool:
    """An extension that wraps every resolver (tracing, say) wants graphql-core's per-field calls."""
    manager = executor.middleware_manager
    return manager is not None and bool(manager.middlewares)

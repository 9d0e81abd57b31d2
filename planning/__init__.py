"""Query planning: what a field reads, who may see it, and how a level of it becomes one statement.

Sits between `schema/` and `loaders/`: it imports `auth`, `loaders` and `datasources`, never
`schema` or `resolvers`. The schema's fields carry declarations made here (`declare`); the
planner (`plan`) reads them from the built schema, the compiler (`compile`) turns them into
SQL, and the per-object resolvers made here read through loaders with the same SQL, so a
field's meaning is written once. `rights` holds the viewer's reach and each visibility
predicate, one SQL fragment each; `ids` encodes relay ids, in Python and in SQL.
"""

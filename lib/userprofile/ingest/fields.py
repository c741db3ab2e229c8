"""Our event fields: the one list every source is mapped to (no Spark needed to read it)."""

from __future__ import annotations

# Each field, in the order of the bronze table, with its type in a JSON event log.
RAW_EVENT_TYPES: dict[str, str] = {
    "event_id": "string",
    "event_ts": "string",
    "user_id": "string",
    "anonymous_id": "string",
    "session_id": "string",
    # The order (invoice) an order line belongs to; without it, an order is the
    # purchases of one session.
    "order_id": "string",
    "event_type": "string",
    "product_id": "string",
    "category": "string",
    "price": "double",
    "quantity": "int",
    "device": "string",
    "channel": "string",
    "email": "string",
    "ip": "string",
}
EVENT_FIELDS = tuple(RAW_EVENT_TYPES)

EVENT_TYPES = (
    "page_view",
    "product_view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "cancel",  # an order line cancelled or returned (order exports)
)


def raw_event_schema() -> str:
    """The JSON log's fields as a Spark DDL schema (``event_ts`` is ISO-8601 text)."""
    return ", ".join(f"{name} {kind}" for name, kind in RAW_EVENT_TYPES.items())

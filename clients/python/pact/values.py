"""Python values <-> Pact's wire `Value`: int, float, str, bytes and None map
to INTEGER, REAL, TEXT, BLOB and NULL. Anything else is refused (before
anything is sent), bool included: True is not a number to a database."""

from pact_rpc.ttypes import Value, ValueType

from . import errors

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def to_wire(value, position=None):
    where = "" if position is None else " (parameter %d)" % position
    if value is None:
        return Value(type=ValueType.NULL_VALUE)
    if isinstance(value, bool):
        raise errors.InvalidArgument("a bool cannot be bound%s: pass 0 or 1" % where)
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise errors.InvalidArgument("%d does not fit in 64 bits%s" % (value, where))
        return Value(type=ValueType.INTEGER, integer_value=value)
    if isinstance(value, float):
        return Value(type=ValueType.REAL, real_value=value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise errors.InvalidArgument("a str that is not valid Unicode%s: %s" % (where, e))
        return Value(type=ValueType.TEXT, text_value=value)
    if isinstance(value, (bytes, bytearray)):
        return Value(type=ValueType.BLOB, blob_value=bytes(value))
    raise errors.InvalidArgument(
        "cannot bind a %s%s: use int, float, str, bytes or None" % (type(value).__name__, where))


def params_to_wire(params):
    if not isinstance(params, (list, tuple)):  # a set has no order, a dict binds its keys
        raise errors.InvalidArgument("params must be a list or tuple of values, got a %s"
                                     % type(params).__name__)
    return [to_wire(v, i) for i, v in enumerate(params, start=1)]


def from_wire(value):
    if value.type == ValueType.INTEGER:
        return value.integer_value
    if value.type == ValueType.REAL:
        return value.real_value
    if value.type == ValueType.TEXT:
        return value.text_value
    if value.type == ValueType.BLOB:
        return bytes(value.blob_value or b"")
    return None

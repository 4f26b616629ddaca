"""OpenTelemetry semantic-convention attributes of each kind of span the model makes: HTTP
and RPC servers and clients, database clients, messaging producers and consumers. Current
names (url.*, http.request.method, db.operation.name...), not the pre-1.21 ones.

Each function returns the attributes that do not change from one span to the next, so the
generator builds them once per call site.
"""

from __future__ import annotations

from connector.synth.model import Db, Publish, Service

__all__ = [
    "client",
    "consumer",
    "db_client",
    "error_attributes",
    "producer",
    "server",
    "span_name",
]

HTTP_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)


def _http(operation: str) -> tuple[str, str]:
    """`GET /cart/{id}` -> (GET, /cart/{id}); a name without a method is a GET."""
    method, _, route = operation.partition(" ")
    if method.upper() in HTTP_METHODS and route:
        return method.upper(), route
    return "GET", operation if operation.startswith("/") else f"/{operation}"


def _rpc(operation: str) -> tuple[str, str]:
    """`oteldemo.CartService/GetCart` -> (oteldemo.CartService, GetCart)."""
    service, _, method = operation.rpartition("/")
    return (service or operation), (method or operation)


def span_name(service: Service, operation: str) -> str:
    if service.protocol == "grpc":
        rpc_service, method = _rpc(operation)
        return f"{rpc_service}/{method}"
    method, route = _http(operation)
    return f"{method} {route}"


def server(service: Service, operation: str) -> dict:
    """The SERVER span of an operation (a trace's root or a call's callee)."""
    if service.protocol == "grpc":
        rpc_service, method = _rpc(operation)
        return {
            "rpc.system": "grpc",
            "rpc.service": rpc_service,
            "rpc.method": method,
            "rpc.grpc.status_code": 0,
            "server.port": service.port,
        }
    method, route = _http(operation)
    return {
        "http.request.method": method,
        "http.route": route,
        "url.path": route,
        "url.scheme": "http",
        "http.response.status_code": 200,
        "server.port": service.port,
    }


def client(callee_name: str, callee: Service, operation: str) -> dict:
    """The CLIENT span in the caller: server.address and peer.service name the callee, which
    service-graph builders read."""
    address = callee.address or callee_name
    attributes = {
        "server.address": address,
        "server.port": callee.port,
        "peer.service": callee_name,
    }
    if callee.protocol == "grpc":
        rpc_service, method = _rpc(operation)
        attributes |= {
            "rpc.system": "grpc",
            "rpc.service": rpc_service,
            "rpc.method": method,
            "rpc.grpc.status_code": 0,
        }
        return attributes
    method, route = _http(operation)
    attributes |= {
        "http.request.method": method,
        "url.full": f"http://{address}:{callee.port}{route}",
        "http.response.status_code": 200,
    }
    return attributes


def db_client(db: Db) -> tuple[str, dict]:
    """(span name, attributes) of a database call."""
    attributes = {
        "db.system": db.system,
        "db.system.name": db.system,
        "db.operation.name": db.operation,
        "server.address": db.address or db.system,
        "peer.service": db.address or db.system,
    }
    if db.port is not None:
        attributes["server.port"] = db.port
    if db.collection is not None:
        attributes["db.collection.name"] = db.collection
    if db.namespace is not None:
        attributes["db.namespace"] = db.namespace
    if db.query is not None:
        attributes["db.query.text"] = db.query
    name = f"{db.operation} {db.collection}" if db.collection else db.operation
    return name, attributes


def producer(publish: Publish) -> tuple[str, dict]:
    return f"publish {publish.destination}", {
        "messaging.system": publish.system,
        "messaging.destination.name": publish.destination,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "peer.service": publish.destination,
    }


def consumer(publish: Publish) -> dict:
    return {
        "messaging.system": publish.system,
        "messaging.destination.name": publish.destination,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
    }


def error_attributes(protocol: str | None) -> tuple[dict, str]:
    """(attributes that change on an error, the default error message) by protocol:
    http, grpc, or None (a database or a queue)."""
    if protocol == "http":
        return {"http.response.status_code": 500, "error.type": "500"}, "HTTP 500"
    if protocol == "grpc":
        return {"rpc.grpc.status_code": 2, "error.type": "UNKNOWN"}, "UNKNOWN"
    return {"error.type": "Exception"}, "operation failed"

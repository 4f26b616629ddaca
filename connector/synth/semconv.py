"""OpenTelemetry semantic-convention attributes of each kind of span the model makes: HTTP
and RPC servers and clients, database clients, messaging producers and consumers. Current
names (url.*, http.request.method, db.operation.name...), not the pre-1.21 ones.

Each function returns the attributes that do not change from one span to the next, so the
generator builds them once per call site. The names come from the opentelemetry-semantic-conventions
package (incubating ones for rpc, messaging, peer.service and the older db.system).
"""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes.db_attributes import DB_SYSTEM
from opentelemetry.semconv._incubating.attributes.messaging_attributes import (
    MESSAGING_DESTINATION_NAME,
    MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE,
    MESSAGING_SYSTEM,
)
from opentelemetry.semconv._incubating.attributes.peer_attributes import PEER_SERVICE
from opentelemetry.semconv._incubating.attributes.rpc_attributes import (
    RPC_GRPC_STATUS_CODE,
    RPC_METHOD,
    RPC_SERVICE,
    RPC_SYSTEM,
)
from opentelemetry.semconv.attributes.db_attributes import (
    DB_COLLECTION_NAME,
    DB_NAMESPACE,
    DB_OPERATION_NAME,
    DB_QUERY_TEXT,
    DB_SYSTEM_NAME,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL, URL_PATH, URL_SCHEME

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
            RPC_SYSTEM: "grpc",
            RPC_SERVICE: rpc_service,
            RPC_METHOD: method,
            RPC_GRPC_STATUS_CODE: 0,
            SERVER_PORT: service.port,
        }
    method, route = _http(operation)
    return {
        HTTP_REQUEST_METHOD: method,
        HTTP_ROUTE: route,
        URL_PATH: route,
        URL_SCHEME: "http",
        HTTP_RESPONSE_STATUS_CODE: 200,
        SERVER_PORT: service.port,
    }


def client(callee_name: str, callee: Service, operation: str) -> dict:
    """The CLIENT span in the caller: server.address and peer.service name the callee, which
    service-graph builders read."""
    address = callee.address or callee_name
    attributes = {
        SERVER_ADDRESS: address,
        SERVER_PORT: callee.port,
        PEER_SERVICE: callee_name,
    }
    if callee.protocol == "grpc":
        rpc_service, method = _rpc(operation)
        attributes |= {
            RPC_SYSTEM: "grpc",
            RPC_SERVICE: rpc_service,
            RPC_METHOD: method,
            RPC_GRPC_STATUS_CODE: 0,
        }
        return attributes
    method, route = _http(operation)
    attributes |= {
        HTTP_REQUEST_METHOD: method,
        URL_FULL: f"http://{address}:{callee.port}{route}",
        HTTP_RESPONSE_STATUS_CODE: 200,
    }
    return attributes


def db_client(db: Db) -> tuple[str, dict]:
    """(span name, attributes) of a database call."""
    attributes = {
        DB_SYSTEM: db.system,
        DB_SYSTEM_NAME: db.system,
        DB_OPERATION_NAME: db.operation,
        SERVER_ADDRESS: db.address or db.system,
        PEER_SERVICE: db.address or db.system,
    }
    if db.port is not None:
        attributes[SERVER_PORT] = db.port
    if db.collection is not None:
        attributes[DB_COLLECTION_NAME] = db.collection
    if db.namespace is not None:
        attributes[DB_NAMESPACE] = db.namespace
    if db.query is not None:
        attributes[DB_QUERY_TEXT] = db.query
    name = f"{db.operation} {db.collection}" if db.collection else db.operation
    return name, attributes


def producer(publish: Publish) -> tuple[str, dict]:
    return f"publish {publish.destination}", {
        MESSAGING_SYSTEM: publish.system,
        MESSAGING_DESTINATION_NAME: publish.destination,
        MESSAGING_OPERATION_TYPE: "send",
        MESSAGING_OPERATION_NAME: "publish",
        PEER_SERVICE: publish.destination,
    }


def consumer(publish: Publish) -> dict:
    return {
        MESSAGING_SYSTEM: publish.system,
        MESSAGING_DESTINATION_NAME: publish.destination,
        MESSAGING_OPERATION_TYPE: "process",
        MESSAGING_OPERATION_NAME: "process",
    }


def error_attributes(protocol: str | None) -> tuple[dict, str]:
    """(attributes that change on an error, the default error message) by protocol:
    http, grpc, or None (a database or a queue)."""
    if protocol == "http":
        return {HTTP_RESPONSE_STATUS_CODE: 500, ERROR_TYPE: "500"}, "HTTP 500"
    if protocol == "grpc":
        return {RPC_GRPC_STATUS_CODE: 2, ERROR_TYPE: "UNKNOWN"}, "UNKNOWN"
    return {ERROR_TYPE: "Exception"}, "operation failed"
